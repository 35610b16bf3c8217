"""The Pub/Sub API as Salesforce's own sample flow uses it, with stock Python libraries from PyPI
(grpcio, grpcio-tools, avro): stubs generated from pubsub_api.proto, TLS, the auth metadata
headers, GetTopic -> GetSchema -> Subscribe -> Avro decode, and the changedFields bitmap decoded
the way Salesforce documents it."""
import io
import json
import os
import queue
import ssl
import sys
import tempfile
import unittest
import urllib.parse
import urllib.request

import avro.io
import avro.schema
import grpc
from grpc_tools import protoc

from emulator_proc import CA, pubsub_address, start_emulator, stop_emulator

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "pubsub-proto", "proto")
TOPIC = "/data/AccountChangeEvent"


def generate_stubs():
    out = tempfile.mkdtemp(prefix="pubsub-stubs-")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "pubsub_api.proto"])
    if rc != 0:
        raise RuntimeError("protoc failed on pubsub_api.proto")
    sys.path.insert(0, out)
    import pubsub_api_pb2
    import pubsub_api_pb2_grpc
    return pubsub_api_pb2, pubsub_api_pb2_grpc


pb2, pb2_grpc = generate_stubs()


def bitmap_fields(schema, bitmaps):
    """Field names from Salesforce's bitmap strings: bit n of `0x...` is the schema's field n;
    `N-0x...` numbers the fields of the record at position N."""
    names = []
    for b in bitmaps:
        if b.startswith("0x"):
            fields, prefix, hexa = schema.fields, "", b
        else:
            pos, hexa = b.split("-")
            parent = schema.fields[int(pos)]
            record = [t for t in parent.type.schemas if t.type == "record"][0]
            fields, prefix = record.fields, parent.name + "."
        bits = int(hexa, 16)
        names += [prefix + f.name for i, f in enumerate(fields) if bits >> i & 1]
    return names


class PubSubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu, cls.base = start_emulator()
        cls.addr = pubsub_address(cls.emu)
        cls.ctx = ssl.create_default_context(cafile=CA)
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "sfsync-local",
                                       "client_secret": "sfsync-local-secret"}).encode()
        with urllib.request.urlopen(f"{cls.base}/services/oauth2/token", body, context=cls.ctx) as r:
            tok = json.load(r)
        cls.token, cls.org_id = tok["access_token"], tok["id"].split("/")[-2]
        with open(CA, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        host, port = cls.addr.rsplit(":", 1)
        cls.channel = grpc.secure_channel(f"localhost:{port}", creds)
        cls.stub = pb2_grpc.PubSubStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        stop_emulator(cls.emu)

    def rest(self, method, path, body=None):
        req = urllib.request.Request(f"{self.base}/services/data/v62.0/{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx) as r:
            text = r.read()
            return json.loads(text) if text else None

    def metadata(self, token=None):
        return (("accesstoken", token or self.token), ("instanceurl", self.base), ("tenantid", self.org_id))

    def test_sample_flow_topic_schema_subscribe_decode(self):
        rid = self.rest("POST", "sobjects/Account", {"Name": "Acme", "Phone": "1"})["id"]
        self.rest("PATCH", f"sobjects/Account/{rid}", {"Phone": "2", "BillingCity": "Paris"})

        topic = self.stub.GetTopic(pb2.TopicRequest(topic_name=TOPIC), metadata=self.metadata())
        self.assertTrue(topic.can_subscribe)
        info = self.stub.GetSchema(pb2.SchemaRequest(schema_id=topic.schema_id), metadata=self.metadata())
        schema = avro.schema.parse(info.schema_json)

        requests = queue.Queue()
        requests.put(pb2.FetchRequest(topic_name=TOPIC, replay_preset=pb2.ReplayPreset.EARLIEST, num_requested=2))

        def fetch_requests():
            while True:
                r = requests.get()
                if r is None:
                    return
                yield r

        decoded = []
        responses = self.stub.Subscribe(fetch_requests(), metadata=self.metadata())
        for resp in responses:
            for ev in resp.events:
                self.assertEqual(ev.event.schema_id, topic.schema_id)
                reader = avro.io.DatumReader(schema)
                decoded.append(reader.read(avro.io.BinaryDecoder(io.BytesIO(ev.event.payload))))
            if len(decoded) >= 2:
                self.assertEqual(resp.pending_num_requested, 0)
                break
        requests.put(None)
        responses.cancel()

        create, update = decoded
        self.assertEqual(create["ChangeEventHeader"]["changeType"], "CREATE")
        self.assertEqual(create["ChangeEventHeader"]["recordIds"], [rid])
        self.assertEqual(create["Name"], "Acme")
        self.assertEqual(update["ChangeEventHeader"]["changeType"], "UPDATE")
        self.assertEqual(update["Phone"], "2")
        self.assertIsNone(update["Name"])
        changed = bitmap_fields(schema, update["ChangeEventHeader"]["changedFields"])
        self.assertEqual(sorted(changed), ["BillingAddress.City", "LastModifiedDate", "Phone"])

    def test_bad_session_is_unauthenticated_with_error_code(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.stub.GetTopic(pb2.TopicRequest(topic_name=TOPIC), metadata=self.metadata("00Dbogus!token"))
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        trailers = dict(e.exception.trailing_metadata())
        self.assertEqual(trailers.get("error-code"), "sfdc.platform.eventbus.grpc.service.auth.error")


if __name__ == "__main__":
    unittest.main()
