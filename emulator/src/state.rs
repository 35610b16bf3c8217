//! Shared server state: configuration, schema, data, sessions, counters, open query cursors.

use crate::cdc::Hub;
use crate::clock::{Clock, DAY_MS};
use crate::config::Config;
use crate::faults::Faults;
use crate::ids;
use crate::rules::Rules;
use crate::schema::live::LiveSchema;
use crate::schema::Schema;
use crate::soql::eval::Plan;
use crate::store::Store;
use crate::value::Value;
use crate::write::Writer;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const USERNAME: &str = "integration@sfsync.local";
pub const PASSWORD: &str = "sfsync";
pub const CLIENT_ID: &str = "sfsync-local";
pub const CLIENT_SECRET: &str = "sfsync-local-secret";
/// Reserved sequence numbers: the org and the integration user keep their IDs across resets.
const ORG_SEQ: u64 = 1;
const USER_SEQ: u64 = 2;
const PROFILE_SEQ: u64 = 3;
/// The org's name (Organization.Name, SOAP login's userInfo.organizationName).
pub const ORG_NAME: &str = "sfsync emulator";
/// Open query cursors kept org-wide; the least recently used is dropped beyond this.
pub const MAX_CURSORS: usize = 200;
/// A query locator expires after 15 minutes of emulator time without being used.
pub const CURSOR_IDLE_MS: i64 = 15 * 60 * 1000;

pub struct Counters {
    pub total: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    /// Subrequests served inside composite and batch requests, by endpoint (not API calls:
    /// the outer request is the call).
    pub by_subrequest: BTreeMap<String, u64>,
    /// API calls in the current 24 h window.
    pub api_usage: u64,
    pub window_start_ms: i64,
    pub daily_limit: u64,
}

pub struct Cursor {
    pub plan: Arc<Plan>,
    pub seqs: Arc<Vec<u64>>,
    pub batch: usize,
    /// Last use, emulator clock (ms).
    pub touched_ms: i64,
    /// Last use, as an ever-increasing tick: the eviction order (ms stamps tie).
    pub lru: u64,
}

pub struct AppState {
    pub cfg: Config,
    /// Changed at runtime by admin field changes; `reset` restores the startup schema.
    pub schema: LiveSchema,
    pub clock: Clock,
    pub store: RwLock<Store>,
    pub rules: RwLock<Rules>,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<Counters>,
    /// access token → expiry (emulator clock, ms), so moving the clock expires sessions.
    pub tokens: Mutex<HashMap<String, i64>>,
    pub cursors: Mutex<HashMap<String, Cursor>>,
    pub cursor_tick: std::sync::atomic::AtomicU64,
    /// Change Data Capture events and CometD clients (also the store's change sink).
    pub cdc: Arc<Hub>,
    /// Schema IDs an object's fields had before a field change, and that schema version: the
    /// Pub/Sub API encodes events committed before the change with the schema they name.
    pub past_schemas: Mutex<HashMap<String, (&'static Schema, usize)>>,
    /// Bulk API 2.0 jobs.
    pub bulk: crate::bulk::Jobs,
    /// JWT bearer key and refresh tokens.
    pub auth: crate::jwt::AuthStore,
    pub org_id: String,
    pub user_id: String,
    /// The integration user's profile (System Administrator).
    pub profile_id: String,
    rng: Mutex<u64>,
}

impl AppState {
    pub fn new(cfg: Config, mut schema: Schema) -> AppState {
        let clock = Clock::default();
        for o in &mut schema.objects {
            o.modified_ms = clock.now_ms();
        }
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        let cdc = Arc::new(Hub::new(&schema));
        let store = Store::new(&schema, cdc.clone());
        let st = AppState {
            cdc,
            past_schemas: Mutex::new(HashMap::new()),
            store: RwLock::new(store),
            counters: Mutex::new(Counters {
                total: 0,
                by_endpoint: BTreeMap::new(),
                by_subrequest: BTreeMap::new(),
                api_usage: 0,
                window_start_ms: 0,
                daily_limit: cfg.daily_api_limit,
            }),
            cfg,
            schema: LiveSchema::new(schema),
            clock,
            rules: RwLock::new(Rules::default()),
            faults: Mutex::new(Faults::default()),
            tokens: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            cursor_tick: Default::default(),
            bulk: crate::bulk::Jobs::default(),
            auth: crate::jwt::AuthStore::default(),
            org_id: ids::mint("00D", ORG_SEQ),
            user_id: ids::mint("005", USER_SEQ),
            profile_id: ids::mint("00e", PROFILE_SEQ),
            rng: Mutex::new(seed),
        };
        st.insert_integration_user();
        st.counters.lock().window_start_ms = st.clock.now_ms();
        st
    }

    /// The org's fixed rows: its Organization, the integration user's Profile and the user.
    fn insert_integration_user(&self) {
        let org: &[(&str, Value)] = &[
            ("Name", Value::str(ORG_NAME)),
            ("InstanceName", Value::str("EMU1")),
            ("IsSandbox", Value::Bool(false)),
            ("OrganizationType", Value::str("Enterprise Edition")),
            ("DefaultLocaleSidKey", Value::str("en_US")),
            ("LanguageLocaleKey", Value::str("en_US")),
            ("TimeZoneSidKey", Value::str("GMT")),
        ];
        self.insert_fixed("Organization", org, ORG_SEQ);
        let profile = &[("Name", Value::str("System Administrator")), ("UserType", Value::str("Standard"))];
        self.insert_fixed("Profile", profile, PROFILE_SEQ);
        let mut user: Vec<(&str, Value)> = [
            ("Username", USERNAME),
            ("LastName", "User"),
            ("FirstName", "Integration"),
            ("Email", USERNAME),
            ("Alias", "integ"),
            ("TimeZoneSidKey", "GMT"),
            ("LocaleSidKey", "en_US"),
            ("EmailEncodingKey", "UTF-8"),
            ("LanguageLocaleKey", "en_US"),
        ]
        .iter()
        .map(|(f, v)| (*f, Value::str(v)))
        .collect();
        user.push(("IsActive", Value::Bool(true)));
        user.push(("ProfileId", Value::str(&self.profile_id)));
        self.insert_fixed("User", &user, USER_SEQ);
    }

    /// Inserts one record with a fixed ID sequence (no rules, no change events); fields the
    /// schema lacks (a custom schema file may drop them) are skipped.
    fn insert_fixed(&self, object: &str, fields: &[(&str, Value)], seq: u64) {
        let Some(obj) = self.schema.object(object) else { return };
        let def = &self.schema.objects[obj];
        let vals: Vec<(usize, Value)> = fields.iter().filter_map(|(f, v)| def.field(f).map(|i| (i, v.clone()))).collect();
        let rules = Rules::default();
        let mut store = self.store.write();
        let stamp = self.clock.stamp();
        let mut w = Writer::new(&self.schema, &mut store, &rules, &self.clock, &self.user_id);
        w.change_events = false;
        w.insert_raw(obj, vals, stamp, Some(seq));
    }

    /// xorshift64*: good enough for tokens, locators and fault rates; no dependency.
    pub fn rand_u64(&self) -> u64 {
        let mut s = self.rng.lock();
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn rand_f64(&self) -> f64 {
        (self.rand_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn issue_token(&self) -> String {
        const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";
        let body: String = (0..96).map(|_| CHARS[(self.rand_u64() % CHARS.len() as u64) as usize] as char).collect();
        let token = format!("{}!AQ{body}", &self.org_id[..15]);
        let expiry = self.clock.now_ms() + self.cfg.token_ttl_secs as i64 * 1000;
        self.tokens.lock().insert(token.clone(), expiry);
        token
    }

    /// Checks a username-password login: the password, followed by the security token when one
    /// is configured.
    pub fn password_ok(&self, username: Option<&str>, password: Option<&str>) -> bool {
        let want = format!("{PASSWORD}{}", self.cfg.security_token.as_deref().unwrap_or(""));
        username == Some(USERNAME) && password == Some(want.as_str())
    }

    pub fn session_valid(&self, token: &str) -> bool {
        let now = self.clock.now_ms();
        let mut tokens = self.tokens.lock();
        match tokens.get(token) {
            Some(&exp) if exp > now => true,
            Some(_) => {
                tokens.remove(token);
                false
            }
            None => false,
        }
    }

    /// Counts one API call against the rolling daily allocation; Err(used, max) when exhausted.
    pub fn use_api(&self) -> Result<(u64, u64), (u64, u64)> {
        let now = self.clock.now_ms();
        let mut c = self.counters.lock();
        if now >= c.window_start_ms + DAY_MS {
            c.window_start_ms = now;
            c.api_usage = 0;
        }
        if c.api_usage >= c.daily_limit {
            return Err((c.api_usage, c.daily_limit));
        }
        c.api_usage += 1;
        Ok((c.api_usage, c.daily_limit))
    }

    pub fn count_endpoint(&self, key: String) {
        let mut c = self.counters.lock();
        c.total += 1;
        *c.by_endpoint.entry(key).or_default() += 1;
    }

    /// A subrequest of a composite or batch request: counted apart, not an API call.
    pub fn count_subrequest(&self, key: String) {
        *self.counters.lock().by_subrequest.entry(key).or_default() += 1;
    }

    pub fn next_tick(&self) -> u64 {
        self.cursor_tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn add_cursor(&self, mut cursor: Cursor) -> String {
        cursor.lru = self.next_tick();
        let id = ids::mint("01g", self.rand_u64() % 62u64.pow(9));
        let mut cursors = self.cursors.lock();
        let now = self.clock.now_ms();
        cursors.retain(|_, c| now - c.touched_ms <= CURSOR_IDLE_MS);
        // Real orgs cap open cursors too; drop the least recently used.
        while cursors.len() >= MAX_CURSORS {
            let oldest = cursors.iter().min_by_key(|(_, c)| c.lru).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => cursors.remove(&k),
                None => break,
            };
        }
        cursors.insert(id.clone(), cursor);
        id
    }

    /// Wipes data, customizations (field changes too), faults, counters and cursors; keeps sessions and the startup schema.
    pub fn reset(&self) {
        {
            let mut store = self.store.write();
            self.schema.restore(self.clock.now_ms());
            let fresh = Store::new_after(&self.schema, &store);
            *store = fresh;
        }
        *self.rules.write() = Rules::default();
        *self.faults.lock() = Faults::default();
        {
            let mut c = self.counters.lock();
            c.total = 0;
            c.by_endpoint.clear();
            c.by_subrequest.clear();
            c.api_usage = 0;
            c.daily_limit = self.cfg.daily_api_limit;
        }
        self.cursors.lock().clear();
        self.cdc.reset(&self.schema);
        self.bulk.clear();
        self.clock.set_offset(0);
        self.counters.lock().window_start_ms = self.clock.now_ms();
        self.insert_integration_user();
    }
}
