"""Drives sf-emulator (over TLS) with the unmodified Salesforce CLI (`sf`, @salesforce/cli 2.138.0).

Every command runs with `--json` (except one CSV query, which takes the CLI's other code path:
`query?columns=true`) and its result is checked; what a command wrote is checked again through
the REST API directly, so the suite does not only trust the CLI's own report.

Run: SF_EMULATOR_BIN=... SF_CLI_BIN=.../package/bin/run.js python -m unittest sf_cli_test  (or ./run.sh)
"""
import csv
import io
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request
import uuid

from emulator_proc import CA, start_emulator, stop_emulator

VERSION = "62.0"
ALIAS = "emu"


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class SfCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sf_bin = os.environ.get("SF_CLI_BIN")
        if not cls.sf_bin or not os.path.exists(cls.sf_bin):
            raise RuntimeError(f"SF_CLI_BIN must point at the sf CLI's bin/run.js (got {cls.sf_bin})")
        cls.emu, cls.base = start_emulator()
        cls.addClassCleanup(stop_emulator, cls.emu)
        # A private HOME: the CLI keeps its auth files, aliases, config and logs there.
        cls.home = tempfile.mkdtemp(prefix="sf-cli-home-")
        cls.addClassCleanup(shutil.rmtree, cls.home, True)
        cls.tls = ssl.create_default_context(cafile=CA)
        token = cls.http("POST", "/services/oauth2/token", form={
            "grant_type": "client_credentials", "client_id": "sfsync-local",
            "client_secret": "sfsync-local-secret"})["access_token"]
        cls.auth = {"Authorization": f"Bearer {token}"}
        cls.org_id = cls.http("GET", "/__emulator/")["org_id"]
        # What `sf org login access-token` does: describes the org (Organization, ScratchOrgInfo,
        # the Tooling SandboxProcess) and stores the auth under the alias.
        cls.login = cls.run_sf("org", "login", "access-token", "--instance-url", cls.base,
                               "--no-prompt", "--alias", ALIAS, env={"SF_ACCESS_TOKEN": token})

    # ---- helpers -------------------------------------------------------------------------------

    @classmethod
    def http(cls, method, path, body=None, form=None, headers=None):
        """A request straight to the emulator (not through the CLI); returns the JSON body."""
        data, hdrs = None, dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(cls.base + path, data=data, method=method, headers=hdrs)
        with urllib.request.urlopen(req, context=cls.tls, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    @classmethod
    def rest(cls, method, path, body=None):
        return cls.http(method, f"/services/data/v{VERSION}/{path}", body=body, headers=cls.auth)

    @classmethod
    def soql(cls, q):
        return cls.rest("GET", "query?q=" + urllib.parse.quote(q))["records"]

    @classmethod
    def create_records(cls, sobject, rows):
        """Creates records through sObject Collections; returns their IDs."""
        body = {"allOrNone": True, "records": [{"attributes": {"type": sobject}, **r} for r in rows]}
        return [r["id"] for r in cls.rest("POST", "composite/sobjects", body)]

    @classmethod
    def sf_process(cls, *args, env=None, json_output=True):
        full_env = {
            **os.environ,
            "HOME": cls.home,
            "NODE_EXTRA_CA_CERTS": CA,
            # Offline and without prompts (see ../../../shared/client-tools.md).
            "SF_DISABLE_TELEMETRY": "true", "SF_AUTOUPDATE_DISABLE": "true",
            "SF_DISABLE_AUTOUPDATE": "true", "SF_SKIP_NEW_VERSION_CHECK": "true",
            "SF_HIDE_RELEASE_NOTES": "true", "SF_HIDE_RELEASE_NOTES_FOOTER": "true",
            "SF_USE_GENERIC_UNIX_KEYCHAIN": "true", "SF_DISABLE_DNS_CHECK": "true",
            "SF_USE_PROGRESS_BAR": "false", "FORCE_COLOR": "0",
            **(env or {}),
        }
        argv = [cls.sf_bin, *args] + (["--json"] if json_output else [])
        return subprocess.run(argv, env=full_env, cwd=cls.home, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=180)

    @classmethod
    def run_sf(cls, *args, env=None):
        """Runs `sf ARGS --json`; returns its `result`, failing with the CLI's error otherwise."""
        proc = cls.sf_process(*args, env=env)
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"sf {' '.join(args)}: no JSON on stdout (exit {proc.returncode})\n"
                                 f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        if out.get("status") != 0 or proc.returncode != 0:
            raise AssertionError(f"sf {' '.join(args)} failed: {out.get('name')}: {out.get('message')}")
        return out["result"]

    def sf(self, *args, env=None):
        return self.run_sf(*args, env=env)

    def sf_error(self, *args):
        """Runs a command that must fail; returns its JSON error."""
        proc = self.sf_process(*args)
        out = json.loads(proc.stdout)
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertEqual(out["status"], 1, out)
        return out

    def write(self, name, text):
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- org -----------------------------------------------------------------------------------

    def test_login_and_org_display(self):
        self.assertEqual(self.login["orgId"], self.org_id)
        self.assertEqual(self.login["username"], "integration@sfsync.local")
        self.assertEqual(self.login["name"], "sfsync emulator")
        self.assertEqual(self.login["isSandbox"], False)
        self.assertEqual(self.login["orgEdition"], "Enterprise Edition")
        shown = self.sf("org", "display", "--target-org", ALIAS)
        # Connected means the CLI's own `GET /services/data/` + identity calls succeeded.
        self.assertEqual(shown["connectedStatus"], "Connected")
        self.assertEqual(shown["id"], self.org_id)
        self.assertEqual(shown["apiVersion"], VERSION)
        self.assertEqual(shown["instanceUrl"].rstrip("/"), self.base)
        self.assertEqual(shown["alias"], ALIAS)

    def test_record_counts(self):
        tag = unique("Count")
        self.create_records("Lead", [{"LastName": f"{tag}{i}", "Company": tag} for i in range(3)])
        counts = self.sf("org", "list", "sobject", "record-counts", "--target-org", ALIAS,
                         "--sobject", "Lead", "--sobject", "Account")
        by_name = {c["name"]: c["count"] for c in counts}
        # Leads are written by this test only.
        self.assertEqual(by_name["Lead"], 3)

    # ---- REST: query, search, records ----------------------------------------------------------

    def test_query(self):
        tag = unique("Query")
        acct = self.create_records("Account", [{"Name": f"{tag} Parent", "Industry": "Energy"}])[0]
        self.create_records("Contact", [{"LastName": f"{tag}B", "AccountId": acct},
                                        {"LastName": f"{tag}A", "AccountId": acct}])
        res = self.sf("data", "query", "--target-org", ALIAS, "--query",
                      f"SELECT LastName, Account.Name, Account.Industry FROM Contact "
                      f"WHERE LastName LIKE '{tag}%' ORDER BY LastName")
        self.assertEqual(res["totalSize"], 2)
        self.assertTrue(res["done"])
        self.assertEqual([r["LastName"] for r in res["records"]], [f"{tag}A", f"{tag}B"])
        self.assertEqual(res["records"][0]["Account"]["Name"], f"{tag} Parent")
        self.assertEqual(res["records"][0]["Account"]["Industry"], "Energy")
        count = self.sf("data", "query", "--target-org", ALIAS, "--query",
                        f"SELECT COUNT() FROM Contact WHERE LastName LIKE '{tag}%'")
        self.assertEqual(count["totalSize"], 2)

    def test_query_csv(self):
        # Without --json the CLI first asks `query?columns=true` for the column names.
        tag = unique("Csv")
        acct = self.create_records("Account", [{"Name": f"{tag} Parent"}])[0]
        self.create_records("Contact", [{"LastName": f"{tag}A", "AccountId": acct}])
        proc = self.sf_process("data", "query", "--target-org", ALIAS, "--result-format", "csv",
                               "--query", f"SELECT LastName, Account.Name FROM Contact "
                               f"WHERE LastName LIKE '{tag}%'", json_output=False)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        rows = list(csv.reader(io.StringIO(proc.stdout.strip())))
        self.assertEqual(rows, [["LastName", "Account.Name"], [f"{tag}A", f"{tag} Parent"]])

    def test_search(self):
        tag = unique("Search")
        self.create_records("Account", [{"Name": f"{tag} Alpha", "Industry": "Energy"},
                                        {"Name": f"Other {uuid.uuid4().hex[:6]}"}])
        self.create_records("Contact", [{"LastName": f"{tag}son", "Email": "s@search.test"}])
        res = self.sf("data", "search", "--target-org", ALIAS, "--query",
                      f"FIND {{{tag}}} IN NAME FIELDS RETURNING Account(Name, Industry), Contact(LastName)")
        found = sorted((r["attributes"]["type"], r.get("Name") or r.get("LastName"))
                       for r in res["searchRecords"])
        self.assertEqual(found, [("Account", f"{tag} Alpha"), ("Contact", f"{tag}son")])

    def test_record_create_get_update_delete(self):
        tag = unique("Crud")
        created = self.sf("data", "create", "record", "--target-org", ALIAS, "--sobject", "Account",
                          "--values", f"Name='{tag} Inc' Industry=Energy NumberOfEmployees=42")
        self.assertTrue(created["success"])
        rid = created["id"]
        self.assertTrue(rid.startswith("001") and len(rid) == 18, rid)
        self.assertEqual(self.rest("GET", f"sobjects/Account/{rid}")["Name"], f"{tag} Inc")

        got = self.sf("data", "get", "record", "--target-org", ALIAS, "--sobject", "Account",
                      "--record-id", rid)
        self.assertEqual((got["Id"], got["Name"], got["Industry"], got["NumberOfEmployees"]),
                         (rid, f"{tag} Inc", "Energy", 42))

        updated = self.sf("data", "update", "record", "--target-org", ALIAS, "--sobject", "Account",
                          "--record-id", rid, "--values", "Industry=Banking")
        self.assertTrue(updated["success"])
        self.assertEqual(self.rest("GET", f"sobjects/Account/{rid}")["Industry"], "Banking")

        deleted = self.sf("data", "delete", "record", "--target-org", ALIAS, "--sobject", "Account",
                          "--where", f"Name='{tag} Inc'")
        self.assertEqual((deleted["id"], deleted["success"]), (rid, True))
        self.assertEqual(self.soql(f"SELECT Id FROM Account WHERE Id = '{rid}'"), [])

    def test_record_errors(self):
        err = self.sf_error("data", "create", "record", "--target-org", ALIAS, "--sobject", "Contact",
                            "--values", "FirstName=NoLastName")
        self.assertEqual(err["name"], "REQUIRED_FIELD_MISSING")
        self.assertEqual(err["data"]["fields"], ["LastName"])
        err = self.sf_error("data", "get", "record", "--target-org", ALIAS, "--sobject", "Account",
                            "--record-id", "001000000000000AAA")
        self.assertEqual(err["name"], "NOT_FOUND")

    # ---- Bulk API 2.0 and composite/tree -------------------------------------------------------

    def test_export_bulk(self):
        tag = unique("Export")
        ids = self.create_records("Account", [{"Name": f"{tag}{i}", "Industry": "Energy"} for i in range(3)])
        out = os.path.join(self.home, f"{tag}.csv")
        res = self.sf("data", "export", "bulk", "--target-org", ALIAS, "--wait", "2",
                      "--query", f"SELECT Id, Name, Industry FROM Account WHERE Name LIKE '{tag}%'",
                      "--output-file", out)
        self.assertEqual(res["totalSize"], 3)
        with open(out, newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["Name"])
        self.assertEqual([(r["Id"], r["Name"], r["Industry"]) for r in rows],
                         [(ids[i], f"{tag}{i}", "Energy") for i in range(3)])

    def test_import_bulk(self):
        tag = unique("Import")
        path = self.write(f"{tag}.csv", "LastName,Email\n" + "".join(
            f"{tag}{i},{tag.lower()}{i}@bulk.test\n" for i in range(4)))
        res = self.sf("data", "import", "bulk", "--target-org", ALIAS, "--sobject", "Contact",
                      "--file", path, "--wait", "2")
        self.assertEqual((res["processedRecords"], res["successfulRecords"], res["failedRecords"]),
                         (4, 4, 0))
        rows = self.soql(f"SELECT LastName, Email FROM Contact WHERE LastName LIKE '{tag}%' ORDER BY LastName")
        self.assertEqual([(r["LastName"], r["Email"]) for r in rows],
                         [(f"{tag}{i}", f"{tag.lower()}{i}@bulk.test") for i in range(4)])

    def test_import_tree(self):
        tag = unique("Tree")
        tree = {"records": [{
            "attributes": {"type": "Account", "referenceId": "AccRef1"},
            "Name": f"{tag} Co",
            "Contacts": {"records": [
                {"attributes": {"type": "Contact", "referenceId": "ConRef1"}, "LastName": f"{tag}One"},
                {"attributes": {"type": "Contact", "referenceId": "ConRef2"}, "LastName": f"{tag}Two"},
            ]},
        }]}
        path = self.write(f"{tag}.json", json.dumps(tree))
        res = self.sf("data", "import", "tree", "--target-org", ALIAS, "--files", path)
        ids = {r["refId"]: (r["type"], r["id"]) for r in res}
        self.assertEqual(sorted(ids), ["AccRef1", "ConRef1", "ConRef2"])
        acct = ids["AccRef1"][1]
        rows = self.soql(f"SELECT Id, LastName, AccountId FROM Contact WHERE LastName LIKE '{tag}%' ORDER BY LastName")
        self.assertEqual([(r["Id"], r["AccountId"]) for r in rows],
                         [(ids["ConRef1"][1], acct), (ids["ConRef2"][1], acct)])


if __name__ == "__main__":
    unittest.main()
