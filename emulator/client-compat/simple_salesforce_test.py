"""Drives sf-emulator (over TLS) with the unmodified simple-salesforce client from PyPI.

Run: SF_EMULATOR_BIN=/path/to/sf-emulator python -m unittest simple_salesforce_test  (or ./run.sh)
"""
import csv
import io
import re
import unittest
import uuid

import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceResourceNotFound

from emulator_proc import CA, start_emulator, stop_emulator

USERNAME = "integration@sfsync.local"
PASSWORD = "sfsync"
VERSION = "62.0"


class LoginHost(requests.Session):
    """simple-salesforce logs in at https://<domain>.salesforce.com; this session sends those
    requests to the emulator instead (what a DNS entry would do) and trusts its test CA. Every
    other request is untouched."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        url = re.sub(r"^https://[a-z.-]+\.salesforce\.com", self.base, url)
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
        kwargs.setdefault("verify", CA)
        return super().request(method, url, *args, **kwargs)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class SecurityTokenTest(unittest.TestCase):
    def test_password_and_security_token(self):
        emu, base = start_emulator("--security-token", "TOK3N")
        try:
            sf = Salesforce(username=USERNAME, password=PASSWORD, security_token="TOK3N", version=VERSION, session=LoginHost(base))
            self.assertEqual(sf.query("SELECT COUNT() FROM Organization")["totalSize"], 1)
            with self.assertRaises(SalesforceAuthenticationFailed) as cm:
                Salesforce(username=USERNAME, password=PASSWORD, security_token="", version=VERSION, session=LoginHost(base))
            self.assertEqual(cm.exception.code, "INVALID_LOGIN")
        finally:
            stop_emulator(emu)


class SimpleSalesforceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu, cls.base = start_emulator()
        # Runs even when the rest of setUpClass fails (tearDownClass would not).
        cls.addClassCleanup(stop_emulator, cls.emu)
        cls.session = LoginHost(cls.base)
        # The most common script: username, password, security token (SOAP partner login).
        cls.sf = Salesforce(username=USERNAME, password=PASSWORD, security_token="",
                            version=VERSION, session=cls.session)

    # ------------------------------------------------------------ login

    def test_soap_login_by_username_password_token(self):
        self.assertEqual(f"https://{self.sf.sf_instance}", self.base)
        self.assertRegex(self.sf.session_id, r"^00D\w{12}!AQ")
        me = self.sf.query(f"SELECT Id, Username, Profile.Name FROM User WHERE Username = '{USERNAME}'")
        self.assertEqual(me["records"][0]["Profile"]["Name"], "System Administrator")
        self.assertFalse(self.sf.is_sandbox())

    def test_soap_login_fault(self):
        with self.assertRaises(SalesforceAuthenticationFailed) as cm:
            Salesforce(username=USERNAME, password="wrong", security_token="", version=VERSION, session=LoginHost(self.base))
        self.assertEqual(cm.exception.code, "INVALID_LOGIN")
        self.assertIn("Invalid username, password, security token; or user locked out.", cm.exception.auth_message)

    def test_login_by_session_id(self):
        # SalesforceLogin with the org's own URL (no *.salesforce.com), then a session-id client.
        session_id, instance = SalesforceLogin(username=USERNAME, password=PASSWORD, security_token="",
                                               sf_version=VERSION, scratch_url=self.base, session=LoginHost(self.base))
        sf = Salesforce(instance=instance, session_id=session_id, version=VERSION, session=LoginHost(self.base))
        self.assertEqual(sf.query("SELECT COUNT() FROM Organization")["totalSize"], 1)
        sf2 = Salesforce(instance_url=self.base, session_id=session_id, version=VERSION, session=LoginHost(self.base))
        self.assertIn("DailyApiRequests", sf2.limits())

    # ------------------------------------------------------------ REST

    def test_describe(self):
        names = {o["name"] for o in self.sf.describe()["sobjects"]}
        self.assertTrue({"Account", "Contact", "Organization", "Profile"} <= names)
        d = self.sf.Account.describe()
        self.assertEqual(d["name"], "Account")
        self.assertIn("Postgres_Id__c", {f["name"] for f in d["fields"]})
        self.assertEqual(self.sf.Contact.metadata()["objectDescribe"]["keyPrefix"], "003")

    def test_crud_and_upsert_by_external_id(self):
        r = self.sf.Account.create({"Name": "Py Co", "NumberOfEmployees": 12})
        self.assertTrue(r["success"])
        acc = self.sf.Account.get(r["id"])
        self.assertEqual(acc["Name"], "Py Co")
        self.assertEqual(self.sf.Account.update(r["id"], {"Name": "Py Co 2"}), 204)
        self.assertEqual(self.sf.Account.get(r["id"])["Name"], "Py Co 2")
        self.assertEqual(self.sf.Account.delete(r["id"]), 204)
        with self.assertRaises(SalesforceResourceNotFound):
            self.sf.Account.get(r["id"])

        key = unique("py")
        self.assertEqual(self.sf.Contact.upsert(f"Postgres_Id__c/{key}", {"LastName": "Upserted"}), 201)
        # An update by upsert answers 200 (created: false) since API 46.0.
        self.assertEqual(self.sf.Contact.upsert(f"Postgres_Id__c/{key}", {"LastName": "Again"}), 200)
        c = self.sf.Contact.get_by_custom_id("Postgres_Id__c", key)
        self.assertEqual(c["LastName"], "Again")

    def test_sosl_search(self):
        tag = unique("sosl").replace("-", "")
        self.sf.Account.create({"Name": f"{tag} Rockets"})
        self.sf.Contact.create({"LastName": "Coyote", "Email": f"{tag}@example.com"})
        found = self.sf.search(f"FIND {{{tag}}} IN ALL FIELDS RETURNING Account(Name), Contact(LastName)")
        recs = found["searchRecords"]
        self.assertEqual([r["attributes"]["type"] for r in recs], ["Account", "Contact"])
        self.assertEqual(recs[0]["Name"], f"{tag} Rockets")
        self.assertEqual(len(self.sf.quick_search(tag)["searchRecords"]), 2)

    def test_parameterized_search(self):
        # simple-salesforce has no helper for it: `restful` is its documented way to any resource.
        tag = unique("param").replace("-", "")
        self.sf.Account.create({"Name": f"{tag} Rockets", "Industry": "Energy"})
        self.sf.Account.create({"Name": f"{tag} Anvils", "Industry": "Banking"})
        self.sf.Contact.create({"LastName": "Coyote", "Email": f"{tag}@example.com"})
        got = self.sf.restful("parameterizedSearch/", params={
            "q": tag, "sobject": "Account", "Account.fields": "Name,Industry",
            "Account.where": "Industry = 'Energy'"})
        self.assertEqual([(r["Name"], r["Industry"]) for r in got["searchRecords"]], [(f"{tag} Rockets", "Energy")])
        body = {"q": tag, "in": "EMAIL", "fields": ["Id"],
                "sobjects": [{"name": "Account"}, {"name": "Contact", "fields": ["Id", "LastName"]}]}
        got = self.sf.restful("parameterizedSearch/", method="POST", json=body)
        self.assertEqual([r["LastName"] for r in got["searchRecords"]], ["Coyote"])

    # ------------------------------------------------------------ Bulk 2.0 and query paging

    def test_bulk2_insert_query_and_query_all(self):
        tag = unique("bulk")
        rows = [{"Name": f"{tag}-{i}", "Postgres_Id__c": f"{tag}-{i}"} for i in range(2500)]
        result = self.sf.bulk2.Account.insert(records=rows, wait=1)
        self.assertEqual(sum(r["numberRecordsProcessed"] for r in result), 2500)
        self.assertEqual(sum(r["numberRecordsFailed"] for r in result), 0)

        got = []
        for page in self.sf.bulk2.Account.query(f"SELECT Name FROM Account WHERE Name LIKE '{tag}-%'", max_records=1000, wait=1):
            got.extend(r["Name"] for r in csv.DictReader(io.StringIO(page)))
        self.assertEqual(len(got), 2500)
        self.assertEqual(set(got), {r["Name"] for r in rows})

        # More than one REST page (2000): query returns the first, query_all follows nextRecordsUrl.
        soql = f"SELECT Id FROM Account WHERE Name LIKE '{tag}-%'"
        first = self.sf.query(soql)
        self.assertFalse(first["done"])
        self.assertEqual(first["totalSize"], 2500)
        self.assertEqual(len(self.sf.query_all(soql)["records"]), 2500)
        self.assertEqual(sum(1 for _ in self.sf.query_all_iter(soql)), 2500)


if __name__ == "__main__":
    unittest.main(verbosity=2)
