//! Object and field metadata: the single source of truth for describe, validation, SOQL and
//! record rendering. Field positions in `ObjectDef::fields` are the record storage slots.

pub mod alter;
pub mod calc;
pub mod describe;
pub mod file;
pub mod live;
pub mod standard;

use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FieldType {
    Id,
    String,
    TextArea,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Phone,
    Url,
    Email,
    Picklist,
    MultiPicklist,
    Combobox,
    Reference,
    Address,
}

impl FieldType {
    pub const ALL: [FieldType; 18] = [
        FieldType::Id,
        FieldType::String,
        FieldType::TextArea,
        FieldType::Boolean,
        FieldType::Int,
        FieldType::Double,
        FieldType::Currency,
        FieldType::Percent,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Phone,
        FieldType::Url,
        FieldType::Email,
        FieldType::Picklist,
        FieldType::MultiPicklist,
        FieldType::Combobox,
        FieldType::Reference,
        FieldType::Address,
    ];

    /// The describe `type` value.
    pub fn api_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::TextArea => "textarea",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Email => "email",
            FieldType::Picklist => "picklist",
            FieldType::MultiPicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Reference => "reference",
            FieldType::Address => "address",
        }
    }

    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Address => "urn:address",
            _ => "xsd:string",
        }
    }

    pub fn from_api_name(s: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.api_name().eq_ignore_ascii_case(s))
    }

    /// Text-valued types (stored as strings, compared case-insensitively in SOQL).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::TextArea
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Email
                | FieldType::Picklist
                | FieldType::MultiPicklist
                | FieldType::Combobox
        )
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent)
    }
}

/// Values the emulator computes instead of accepting from clients.
#[derive(Clone, Debug, PartialEq)]
pub enum Derived {
    No,
    /// `Name` of Contact/Lead/User: FirstName + ' ' + LastName, stored on every write.
    FullName,
    /// Compound address read from `{prefix}Street`, `{prefix}City`, ...; never stored.
    Address(String),
    /// Formula field (source as written, parsed form), kept current by `recalc::recompute`.
    Formula(String, calc::Expr),
    /// Roll-up summary field, kept current by `recalc::recompute`.
    Rollup(calc::Rollup),
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ftype: FieldType,
    pub length: u32,
    pub precision: u32,
    pub scale: u32,
    pub digits: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub defaulted_on_create: bool,
    pub calculated: bool,
    pub external_id: bool,
    pub unique: bool,
    pub id_lookup: bool,
    pub name_field: bool,
    pub custom: bool,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    /// The parent's child relationship name (e.g. `Contacts` for Contact.AccountId).
    pub child_relationship: Option<String>,
    pub picklist: Vec<String>,
    pub default_picklist: Option<String>,
    pub restricted_picklist: bool,
    pub derived: Derived,
    /// The compound field this one is part of (BillingCity → BillingAddress).
    pub compound_field: Option<String>,
}

impl FieldDef {
    pub fn new(name: &str, label: &str, ftype: FieldType) -> FieldDef {
        let (length, digits, precision, scale) = match ftype {
            FieldType::Id | FieldType::Reference => (18, 0, 0, 0),
            FieldType::String | FieldType::Picklist | FieldType::Url | FieldType::Combobox => (255, 0, 0, 0),
            FieldType::TextArea => (32000, 0, 0, 0),
            FieldType::MultiPicklist => (4099, 0, 0, 0),
            FieldType::Phone => (40, 0, 0, 0),
            FieldType::Email => (80, 0, 0, 0),
            FieldType::Int => (0, 9, 0, 0),
            FieldType::Double | FieldType::Currency => (0, 0, 18, 2),
            FieldType::Percent => (0, 0, 3, 0),
            _ => (0, 0, 0, 0),
        };
        let boolean = ftype == FieldType::Boolean;
        FieldDef {
            name: name.into(),
            label: label.into(),
            ftype,
            length,
            precision,
            scale,
            digits,
            // Booleans are never null in Salesforce: not nillable, defaulted to false.
            nillable: !boolean,
            createable: true,
            updateable: true,
            defaulted_on_create: boolean,
            calculated: false,
            external_id: false,
            unique: false,
            id_lookup: false,
            name_field: false,
            custom: name.ends_with("__c"),
            reference_to: vec![],
            relationship_name: None,
            child_relationship: None,
            picklist: vec![],
            default_picklist: None,
            restricted_picklist: false,
            derived: Derived::No,
            compound_field: None,
        }
    }
    pub fn len(mut self, n: u32) -> Self {
        self.length = n;
        self
    }
    pub fn num(mut self, precision: u32, scale: u32) -> Self {
        self.precision = precision;
        self.scale = scale;
        self
    }
    pub fn digits(mut self, n: u32) -> Self {
        self.digits = n;
        self
    }
    /// Required on create: not nillable and not defaulted.
    pub fn required(mut self) -> Self {
        self.nillable = false;
        self
    }
    pub fn readonly(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
    pub fn create_only(mut self) -> Self {
        self.updateable = false;
        self
    }
    pub fn defaulted(mut self) -> Self {
        self.defaulted_on_create = true;
        self
    }
    pub fn lookup(mut self) -> Self {
        self.id_lookup = true;
        self
    }
    pub fn values(mut self, values: &[&str]) -> Self {
        self.picklist = values.iter().map(|v| v.to_string()).collect();
        self
    }
    pub fn default_value(mut self, v: &str) -> Self {
        self.default_picklist = Some(v.into());
        self.defaulted_on_create = true;
        self
    }
    pub fn restricted(mut self) -> Self {
        self.restricted_picklist = true;
        self
    }
    pub fn refs(mut self, to: &[&str], rel: &str, child: Option<&str>) -> Self {
        self.reference_to = to.iter().map(|v| v.to_string()).collect();
        self.relationship_name = Some(rel.into());
        self.child_relationship = child.map(Into::into);
        self
    }
    pub fn ext_id(mut self) -> Self {
        self.external_id = true;
        self.unique = true;
        self.id_lookup = true;
        self
    }
    pub fn derived(mut self, d: Derived) -> Self {
        self.derived = d;
        self.calculated = matches!(self.derived, Derived::FullName);
        self.readonly()
    }
    /// Long text areas can't be filtered or sorted in SOQL.
    pub fn filterable(&self) -> bool {
        !(self.ftype == FieldType::TextArea && self.length > 255) && self.ftype != FieldType::Address
    }
    pub fn required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }
}

/// Positions of the system fields every object carries.
#[derive(Clone, Debug, Default)]
pub struct SysFields {
    pub is_deleted: usize,
    pub created_date: usize,
    pub created_by: usize,
    pub last_modified_date: usize,
    pub last_modified_by: usize,
    pub system_modstamp: usize,
    pub owner: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub custom: bool,
    pub createable: bool,
    pub updateable: bool,
    pub deletable: bool,
    pub queryable: bool,
    pub fields: Vec<FieldDef>,
    by_name: HashMap<String, usize>,
    by_relationship: HashMap<String, usize>,
    pub sys: SysFields,
    /// Fields kept in a value → records index: external IDs and unique fields.
    pub indexed: Vec<usize>,
    /// When the describe last changed (emulator clock, ms): describe's Last-Modified.
    pub modified_ms: i64,
}

impl ObjectDef {
    pub fn new(name: &str, label: &str, plural: &str, prefix: &str, fields: Vec<FieldDef>) -> ObjectDef {
        let mut o = ObjectDef {
            name: name.into(),
            label: label.into(),
            label_plural: plural.into(),
            key_prefix: prefix.into(),
            custom: name.ends_with("__c"),
            createable: true,
            updateable: true,
            deletable: true,
            queryable: true,
            fields,
            by_name: HashMap::new(),
            by_relationship: HashMap::new(),
            sys: SysFields::default(),
            indexed: vec![],
            modified_ms: 0,
        };
        o.reindex();
        o
    }

    /// Rebuilds the lookup tables after `fields` changes (e.g. custom fields from a schema file).
    pub fn reindex(&mut self) {
        self.by_name = self.fields.iter().enumerate().map(|(i, f)| (f.name.to_ascii_lowercase(), i)).collect();
        self.by_relationship =
            self.fields.iter().enumerate().filter_map(|(i, f)| f.relationship_name.as_ref().map(|r| (r.to_ascii_lowercase(), i))).collect();
        let pos = |n: &str| self.by_name.get(&n.to_ascii_lowercase()).copied();
        self.sys = SysFields {
            is_deleted: pos("IsDeleted").expect("IsDeleted"),
            created_date: pos("CreatedDate").expect("CreatedDate"),
            created_by: pos("CreatedById").expect("CreatedById"),
            last_modified_date: pos("LastModifiedDate").expect("LastModifiedDate"),
            last_modified_by: pos("LastModifiedById").expect("LastModifiedById"),
            system_modstamp: pos("SystemModstamp").expect("SystemModstamp"),
            owner: pos("OwnerId"),
        };
        self.indexed = (0..self.fields.len())
            .filter(|&i| {
                let f = &self.fields[i];
                (f.external_id || f.unique) && f.ftype != FieldType::Id
            })
            .collect();
    }

    /// Case-insensitive field lookup.
    pub fn field(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The reference field behind a relationship name (`Account` → AccountId).
    pub fn relationship(&self, name: &str) -> Option<usize> {
        self.by_relationship.get(&name.to_ascii_lowercase()).copied()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    pub fn new(objects: Vec<ObjectDef>) -> Schema {
        let mut s = Schema { objects, by_name: HashMap::new() };
        s.reindex();
        s
    }
    pub fn reindex(&mut self) {
        self.by_name = self.objects.iter().enumerate().map(|(i, o)| (o.name.to_ascii_lowercase(), i)).collect();
    }
    pub fn object(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }
    pub fn by_prefix(&self, prefix: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.key_prefix == prefix)
    }
}
