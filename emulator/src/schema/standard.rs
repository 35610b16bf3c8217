//! The default org: standard objects with their real API names, types, lengths and required-ness.

use super::{Derived, FieldDef, FieldType as T, ObjectDef, Schema};

fn f(name: &str, label: &str, t: T) -> FieldDef {
    FieldDef::new(name, label, t)
}

fn id_field(object_label: &str) -> FieldDef {
    let mut id = f("Id", &format!("{object_label} ID"), T::Id).readonly().defaulted().lookup();
    id.nillable = false;
    id
}

fn audit(name: &str, label: &str, t: T) -> FieldDef {
    let mut fd = f(name, label, t).readonly().defaulted();
    fd.nillable = false;
    if t == T::Reference {
        let rel = name.trim_end_matches("Id");
        fd = fd.refs(&["User"], rel, None);
    }
    fd
}

/// Wraps an object's own fields with the system fields every object has, in Salesforce's order,
/// plus the sfsync external ID field.
pub fn object(name: &str, label: &str, plural: &str, prefix: &str, own: Vec<FieldDef>, owner: bool) -> ObjectDef {
    let mut fields = vec![id_field(label), audit("IsDeleted", "Deleted", T::Boolean)];
    fields.extend(own);
    if owner {
        fields.push(f("OwnerId", "Owner ID", T::Reference).required().defaulted().refs(&["User"], "Owner", None));
    }
    fields.extend([
        audit("CreatedDate", "Created Date", T::DateTime),
        audit("CreatedById", "Created By ID", T::Reference),
        audit("LastModifiedDate", "Last Modified Date", T::DateTime),
        audit("LastModifiedById", "Last Modified By ID", T::Reference),
        audit("SystemModstamp", "System Modstamp", T::DateTime),
    ]);
    fields.push(postgres_id());
    ObjectDef::new(name, label, plural, prefix, fields)
}

pub fn postgres_id() -> FieldDef {
    f("Postgres_Id__c", "Postgres Id", T::String).len(255).ext_id()
}

fn name_field(label: &str, len: u32) -> FieldDef {
    let mut n = f("Name", label, T::String).len(len).required().lookup();
    n.name_field = true;
    n
}

fn full_name(label: &str) -> FieldDef {
    let mut n = f("Name", label, T::String).len(121).derived(Derived::FullName).lookup();
    n.name_field = true;
    n
}

fn address(prefix: &str, label_prefix: &str, state_len: u32) -> Vec<FieldDef> {
    let l = |s: &str| if label_prefix.is_empty() { s.to_string() } else { format!("{label_prefix} {s}") };
    let compound = format!("{prefix}Address");
    let part = |fd: FieldDef| FieldDef { compound_field: Some(compound.clone()), ..fd };
    vec![
        part(f(&format!("{prefix}Street"), &l("Street"), T::TextArea).len(255)),
        part(f(&format!("{prefix}City"), &l("City"), T::String).len(40)),
        part(f(&format!("{prefix}State"), &l("State/Province"), T::String).len(state_len)),
        part(f(&format!("{prefix}PostalCode"), &l("Zip/Postal Code"), T::String).len(20)),
        part(f(&format!("{prefix}Country"), &l("Country"), T::String).len(80)),
        f(&format!("{prefix}Address"), &l("Address"), T::Address).derived(Derived::Address(prefix.into())),
    ]
}

const SOURCES: &[&str] = &["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"];
const SALUTATIONS: &[&str] = &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."];
const RATINGS: &[&str] = &["Hot", "Warm", "Cold"];
const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
];

fn account() -> ObjectDef {
    let mut own = vec![
        name_field("Account Name", 255),
        f("Type", "Account Type", T::Picklist).values(&[
            "Prospect",
            "Customer - Direct",
            "Customer - Channel",
            "Channel Partner / Reseller",
            "Installation Partner",
            "Technology Partner",
            "Other",
        ]),
        f("ParentId", "Parent Account ID", T::Reference).refs(&["Account"], "Parent", Some("ChildAccounts")),
    ];
    own.extend(address("Billing", "Billing", 80));
    own.extend(address("Shipping", "Shipping", 80));
    own.extend([
        f("Phone", "Account Phone", T::Phone),
        f("Fax", "Account Fax", T::Phone),
        f("AccountNumber", "Account Number", T::String).len(40),
        f("Website", "Website", T::Url),
        f("Sic", "SIC Code", T::String).len(20),
        f("Industry", "Industry", T::Picklist).values(INDUSTRIES),
        f("AnnualRevenue", "Annual Revenue", T::Currency).num(18, 0),
        f("NumberOfEmployees", "Employees", T::Int).digits(8),
        f("Ownership", "Ownership", T::Picklist).values(&["Public", "Private", "Subsidiary", "Other"]),
        f("TickerSymbol", "Ticker Symbol", T::String).len(20),
        f("Description", "Account Description", T::TextArea).len(32000),
        f("Rating", "Account Rating", T::Picklist).values(RATINGS),
        f("Site", "Account Site", T::String).len(80),
        f("AccountSource", "Account Source", T::Picklist).values(SOURCES),
        f("LastActivityDate", "Last Activity", T::Date).readonly(),
    ]);
    object("Account", "Account", "Accounts", "001", own, true)
}

fn contact() -> ObjectDef {
    let mut own = vec![
        f("LastName", "Last Name", T::String).len(80).required(),
        f("FirstName", "First Name", T::String).len(40),
        f("Salutation", "Salutation", T::Picklist).values(SALUTATIONS),
        full_name("Full Name"),
        f("AccountId", "Account ID", T::Reference).refs(&["Account"], "Account", Some("Contacts")),
        f("ReportsToId", "Reports To ID", T::Reference).refs(&["Contact"], "ReportsTo", None),
    ];
    own.extend(address("Mailing", "Mailing", 80));
    own.extend([
        f("Phone", "Business Phone", T::Phone),
        f("Fax", "Business Fax", T::Phone),
        f("MobilePhone", "Mobile Phone", T::Phone),
        f("Email", "Email", T::Email).lookup(),
        f("Title", "Title", T::String).len(128),
        f("Department", "Department", T::String).len(80),
        f("Birthdate", "Birthdate", T::Date),
        f("LeadSource", "Lead Source", T::Picklist).values(SOURCES),
        f("Description", "Contact Description", T::TextArea).len(32000),
        f("HasOptedOutOfEmail", "Email Opt Out", T::Boolean),
        f("DoNotCall", "Do Not Call", T::Boolean),
        f("LastActivityDate", "Last Activity", T::Date).readonly(),
    ]);
    object("Contact", "Contact", "Contacts", "003", own, true)
}

fn lead() -> ObjectDef {
    let mut own = vec![
        f("LastName", "Last Name", T::String).len(80).required(),
        f("FirstName", "First Name", T::String).len(40),
        f("Salutation", "Salutation", T::Picklist).values(SALUTATIONS),
        full_name("Full Name"),
        f("Title", "Title", T::String).len(128),
        f("Company", "Company", T::String).len(255).required(),
    ];
    own.extend(address("", "", 80));
    own.extend([
        f("Phone", "Phone", T::Phone),
        f("MobilePhone", "Mobile Phone", T::Phone),
        f("Email", "Email", T::Email).lookup(),
        f("Website", "Website", T::Url),
        f("Description", "Description", T::TextArea).len(32000),
        f("LeadSource", "Lead Source", T::Picklist).values(SOURCES),
        f("Status", "Status", T::Picklist)
            .values(&["Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"])
            .default_value("Open - Not Contacted")
            .required(),
        f("Industry", "Industry", T::Picklist).values(INDUSTRIES),
        f("Rating", "Rating", T::Picklist).values(RATINGS),
        f("AnnualRevenue", "Annual Revenue", T::Currency).num(18, 0),
        f("NumberOfEmployees", "Employees", T::Int).digits(8),
        f("HasOptedOutOfEmail", "Email Opt Out", T::Boolean),
        f("IsConverted", "Converted", T::Boolean).readonly(),
        f("ConvertedDate", "Converted Date", T::Date).readonly(),
        f("ConvertedAccountId", "Converted Account ID", T::Reference).readonly().refs(&["Account"], "ConvertedAccount", None),
        f("ConvertedContactId", "Converted Contact ID", T::Reference).readonly().refs(&["Contact"], "ConvertedContact", None),
        f("ConvertedOpportunityId", "Converted Opportunity ID", T::Reference).readonly().refs(
            &["Opportunity"],
            "ConvertedOpportunity",
            None,
        ),
    ]);
    object("Lead", "Lead", "Leads", "00Q", own, true)
}

fn opportunity() -> ObjectDef {
    let own = vec![
        f("AccountId", "Account ID", T::Reference).refs(&["Account"], "Account", Some("Opportunities")),
        name_field("Name", 120),
        f("Description", "Description", T::TextArea).len(32000),
        f("StageName", "Stage", T::Picklist)
            .values(&[
                "Prospecting",
                "Qualification",
                "Needs Analysis",
                "Value Proposition",
                "Id. Decision Makers",
                "Perception Analysis",
                "Proposal/Price Quote",
                "Negotiation/Review",
                "Closed Won",
                "Closed Lost",
            ])
            .required(),
        f("Amount", "Amount", T::Currency).num(16, 2),
        f("Probability", "Probability (%)", T::Percent).num(3, 0),
        f("CloseDate", "Close Date", T::Date).required(),
        f("Type", "Opportunity Type", T::Picklist).values(&[
            "Existing Customer - Upgrade",
            "Existing Customer - Replacement",
            "Existing Customer - Downgrade",
            "New Customer",
        ]),
        f("NextStep", "Next Step", T::String).len(255),
        f("LeadSource", "Lead Source", T::Picklist).values(SOURCES),
        f("IsClosed", "Closed", T::Boolean).readonly(),
        f("IsWon", "Won", T::Boolean).readonly(),
        f("ForecastCategoryName", "Forecast Category", T::Picklist).values(&["Omitted", "Pipeline", "Best Case", "Commit", "Closed"]),
        f("CampaignId", "Campaign ID", T::Reference).refs(&["Campaign"], "Campaign", Some("Opportunities")),
    ];
    object("Opportunity", "Opportunity", "Opportunities", "006", own, true)
}

fn user() -> ObjectDef {
    let mut own = vec![
        f("Username", "Username", T::String).len(80).required().lookup(),
        f("LastName", "Last Name", T::String).len(80).required(),
        f("FirstName", "First Name", T::String).len(40),
        full_name("Full Name"),
        f("CompanyName", "Company Name", T::String).len(80),
        f("Department", "Department", T::String).len(80),
        f("Title", "Title", T::String).len(80),
    ];
    own[0].unique = true;
    own.extend(address("", "", 80));
    own.extend([
        f("Email", "Email", T::Email).len(128).required(),
        f("Phone", "Phone", T::Phone),
        f("MobilePhone", "Mobile", T::Phone),
        f("Alias", "Alias", T::String).len(8).required(),
        f("CommunityNickname", "Nickname", T::String).len(40),
        f("IsActive", "Active", T::Boolean),
        f("TimeZoneSidKey", "Time Zone", T::Picklist)
            .values(&["America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "GMT"])
            .required()
            .restricted(),
        f("LocaleSidKey", "Locale", T::Picklist).values(&["en_US", "en_GB", "fr_FR", "de_DE"]).required().restricted(),
        f("EmailEncodingKey", "Email Encoding", T::Picklist).values(&["UTF-8", "ISO-8859-1"]).required().restricted(),
        f("LanguageLocaleKey", "Language", T::Picklist).values(&["en_US", "fr", "de"]).required().restricted(),
        f("ProfileId", "Profile ID", T::Reference).refs(&["Profile"], "Profile", Some("Users")),
    ]);
    object("User", "User", "Users", "005", own, false)
}

fn task() -> ObjectDef {
    let own = vec![
        f("WhoId", "Name ID", T::Reference).refs(&["Contact", "Lead"], "Who", Some("Tasks")),
        f("WhatId", "Related To ID", T::Reference).refs(&["Account", "Opportunity", "Campaign"], "What", Some("Tasks")),
        f("Subject", "Subject", T::Combobox).values(&["Call", "Send Letter", "Send Quote", "Other"]),
        f("ActivityDate", "Due Date Only", T::Date),
        f("Status", "Status", T::Picklist)
            .values(&["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"])
            .default_value("Not Started")
            .required(),
        f("Priority", "Priority", T::Picklist).values(&["High", "Normal", "Low"]).default_value("Normal").required(),
        f("Description", "Description", T::TextArea).len(32000),
        f("IsClosed", "Closed", T::Boolean).readonly(),
        f("TaskSubtype", "Task Subtype", T::Picklist).values(&["Task", "Email", "Call"]).create_only(),
    ];
    object("Task", "Task", "Tasks", "00T", own, true)
}

fn campaign() -> ObjectDef {
    let own = vec![
        name_field("Name", 80),
        f("ParentId", "Parent Campaign ID", T::Reference).refs(&["Campaign"], "Parent", Some("ChildCampaigns")),
        f("Type", "Type", T::Picklist).values(&[
            "Conference",
            "Webinar",
            "Trade Show",
            "Public Relations",
            "Partners",
            "Referral Program",
            "Advertisement",
            "Banner Ads",
            "Direct Mail",
            "Email",
            "Telemarketing",
            "Other",
        ]),
        f("Status", "Status", T::Picklist).values(&["Planned", "In Progress", "Completed", "Aborted"]),
        f("StartDate", "Start Date", T::Date),
        f("EndDate", "End Date", T::Date),
        f("ExpectedRevenue", "Expected Revenue in Campaign", T::Currency).num(18, 0),
        f("BudgetedCost", "Budgeted Cost in Campaign", T::Currency).num(18, 0),
        f("ActualCost", "Actual Cost in Campaign", T::Currency).num(18, 0),
        f("IsActive", "Active", T::Boolean),
        f("Description", "Description", T::TextArea).len(32000),
    ];
    object("Campaign", "Campaign", "Campaigns", "701", own, true)
}

fn campaign_member() -> ObjectDef {
    let own = vec![
        f("CampaignId", "Campaign ID", T::Reference).required().create_only().refs(&["Campaign"], "Campaign", Some("CampaignMembers")),
        f("LeadId", "Lead ID", T::Reference).create_only().refs(&["Lead"], "Lead", Some("CampaignMembers")),
        f("ContactId", "Contact ID", T::Reference).create_only().refs(&["Contact"], "Contact", Some("CampaignMembers")),
        f("Status", "Status", T::Picklist).values(&["Planned", "Received", "Responded", "Sent"]).default_value("Sent"),
        f("HasResponded", "Responded", T::Boolean).readonly(),
        f("FirstRespondedDate", "First Responded Date", T::Date).readonly(),
    ];
    object("CampaignMember", "Campaign Member", "Campaign Members", "00v", own, false)
}

pub fn default_schema() -> Schema {
    Schema::new(vec![account(), contact(), lead(), opportunity(), user(), task(), campaign(), campaign_member(), organization(), profile()])
}

/// Setup objects clients read (the `sf` CLI, `is_sandbox()` in simple-salesforce): queryable and
/// described, not writable through the API, no sfsync external ID.
fn setup_object(name: &str, label: &str, plural: &str, prefix: &str, own: Vec<FieldDef>) -> ObjectDef {
    let own = own.into_iter().map(FieldDef::readonly).collect();
    let mut o = object(name, label, plural, prefix, own, false);
    o.fields.retain(|fd| fd.name != "Postgres_Id__c");
    let mut o = ObjectDef::new(&o.name, &o.label, &o.label_plural, &o.key_prefix, o.fields);
    (o.createable, o.updateable, o.deletable) = (false, false, false);
    o
}

fn organization() -> ObjectDef {
    let mut name = f("Name", "Name", T::String).len(80).lookup();
    name.name_field = true;
    let own = vec![
        name,
        f("Division", "Division", T::String).len(80),
        f("InstanceName", "Instance Name", T::String).len(5),
        f("IsSandbox", "Is Sandbox", T::Boolean),
        f("OrganizationType", "Edition", T::Picklist).values(&["Developer Edition", "Enterprise Edition", "Unlimited Edition"]),
        f("NamespacePrefix", "Namespace Prefix", T::String).len(15),
        f("TrialExpirationDate", "Trial Expiration Date", T::DateTime),
        f("DefaultLocaleSidKey", "Locale", T::Picklist).values(&["en_US"]),
        f("LanguageLocaleKey", "Language", T::Picklist).values(&["en_US"]),
        f("TimeZoneSidKey", "Time Zone", T::Picklist).values(&["GMT"]),
    ];
    setup_object("Organization", "Organization", "Organizations", "00D", own)
}

fn profile() -> ObjectDef {
    let mut name = f("Name", "Name", T::String).len(255).lookup();
    name.name_field = true;
    let own = vec![
        name,
        f("UserType", "User Type", T::Picklist).values(&["Standard", "PowerPartner", "CsnOnly", "Guest"]),
        f("Description", "Description", T::String).len(255),
    ];
    setup_object("Profile", "Profile", "Profiles", "00e", own)
}
