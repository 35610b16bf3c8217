//! Relationships: field paths through parent lookups (`Account.Owner.Name`, polymorphic ones
//! included), the select list as a tree of parent objects and child relationship subqueries
//! (`(SELECT … FROM Contacts)`), and semi/anti-joins (`Id [NOT] IN (SELECT AccountId FROM …)`).

use super::plan::{compile_in, compile_on, Ctx, Plan};
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use crate::soql::ast::{Path, Query, SelectItem};
use crate::soql::SoqlError;
use crate::store::{Record, Store};
use crate::value::{Value, NULL};
use std::collections::HashSet;
use std::sync::OnceLock;

/// A field path resolved for every object it may traverse (polymorphic lookups allow several).
#[derive(Debug, Clone)]
pub struct FieldRef {
    /// Per hop: (object, reference field) pairs.
    pub(super) hops: Vec<Vec<(usize, usize)>>,
    /// Leaf (object, field) pairs.
    pub(super) leaf: Vec<(usize, usize)>,
    pub(super) ftype: FieldType,
}

impl FieldRef {
    /// Type of the leaf field.
    pub fn ftype(&self) -> FieldType {
        self.ftype
    }
    /// The value on record `rec` of `obj`, following the lookups (null past an empty one).
    pub fn get<'s>(&self, schema: &Schema, store: &'s Store, obj: usize, rec: &'s Record) -> &'s Value {
        let (mut o, mut r) = (obj, rec);
        for hop in &self.hops {
            let Some(&(_, fi)) = hop.iter().find(|(ho, _)| *ho == o) else { return &NULL };
            let Some((po, seq)) = r.get(fi).as_str().and_then(|id| store.find(schema, id)) else { return &NULL };
            o = po;
            r = &store.tables[po].recs[&seq];
        }
        match self.leaf.iter().find(|(lo, _)| *lo == o) {
            Some(&(_, fi)) => r.get(fi),
            None => &NULL,
        }
    }
}

fn no_such_column(p: &Path, seg: &str, obj: &ObjectDef) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        format!(
            "No such column '{seg}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            obj.name
        ),
        p.pos,
    )
}

/// Resolves `A.B.Field` from `obj`. Also returns the canonical names along the path.
pub fn resolve(schema: &Schema, obj: usize, p: &Path) -> Result<(FieldRef, Vec<String>), SoqlError> {
    let mut segs: Vec<&str> = p.text.split('.').collect();
    let root = &schema.objects[obj];
    // `Account.Name` in `FROM Account` may name the object itself.
    if segs.len() > 1 && segs[0].eq_ignore_ascii_case(&root.name) && root.relationship(segs[0]).is_none() {
        segs.remove(0);
    }
    let mut cur = vec![obj];
    let mut hops = vec![];
    let mut names = vec![];
    for seg in &segs[..segs.len() - 1] {
        let hop: Vec<(usize, usize)> = cur.iter().filter_map(|&o| schema.objects[o].relationship(seg).map(|fi| (o, fi))).collect();
        let Some(&(o0, f0)) = hop.first() else {
            return Err(SoqlError::at(
                "INVALID_FIELD",
                format!("Didn't understand relationship '{seg}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                p.pos,
            ));
        };
        names.push(schema.objects[o0].fields[f0].relationship_name.clone().unwrap_or_default());
        let mut next: Vec<usize> = vec![];
        for &(o, fi) in &hop {
            for target in &schema.objects[o].fields[fi].reference_to {
                if let Some(t) = schema.object(target) {
                    if !next.contains(&t) {
                        next.push(t);
                    }
                }
            }
        }
        hops.push(hop);
        cur = next;
    }
    let leaf_name = segs[segs.len() - 1];
    let leaf: Vec<(usize, usize)> = cur.iter().filter_map(|&o| schema.objects[o].field(leaf_name).map(|fi| (o, fi))).collect();
    let Some(&(lo, lf)) = leaf.first() else {
        return Err(no_such_column(p, leaf_name, &schema.objects[cur[0]]));
    };
    let fd = &schema.objects[lo].fields[lf];
    names.push(fd.name.clone());
    Ok((FieldRef { hops, leaf, ftype: fd.ftype }, names))
}

/// The leaf field's definition (the first object's, when the path is polymorphic).
pub(super) fn leaf_def<'a>(schema: &'a Schema, fr: &FieldRef) -> &'a FieldDef {
    let (o, f) = fr.leaf[0];
    &schema.objects[o].fields[f]
}

#[derive(Debug, Clone)]
pub(super) enum Col {
    Field {
        name: String,
        fields: Vec<(usize, usize)>,
    },
    Rel {
        name: String,
        fields: Vec<(usize, usize)>,
        children: Vec<Col>,
    },
    /// A child relationship subquery: child records whose `field` points at the row.
    Child {
        name: String,
        obj: usize,
        field: usize,
        plan: Box<Plan>,
    },
}

/// Adds a selected path to the select-list tree, sharing the parent objects it goes through.
pub(super) fn add_col(cols: &mut Vec<Col>, fr: &FieldRef, names: &[String], depth: usize) {
    if depth == fr.hops.len() {
        if !cols.iter().any(|c| matches!(c, Col::Field { name, .. } if name == &names[depth])) {
            cols.push(Col::Field { name: names[depth].clone(), fields: fr.leaf.clone() });
        }
        return;
    }
    let pos = cols.iter().position(|c| matches!(c, Col::Rel { name, .. } if name == &names[depth]));
    let pos = pos.unwrap_or_else(|| {
        cols.push(Col::Rel { name: names[depth].clone(), fields: fr.hops[depth].clone(), children: vec![] });
        cols.len() - 1
    });
    if let Col::Rel { children, .. } = &mut cols[pos] {
        add_col(children, fr, names, depth + 1);
    }
}

/// The child relationship `name` of `parent`: (child object, its reference field, canonical name).
fn child_relationship(schema: &Schema, parent: usize, name: &str) -> Option<(usize, usize, String)> {
    let pname = &schema.objects[parent].name;
    schema.objects.iter().enumerate().find_map(|(o, def)| {
        def.fields.iter().enumerate().find_map(|(fi, fd)| {
            let rel = fd.child_relationship.as_deref()?;
            (rel.eq_ignore_ascii_case(name) && fd.reference_to.iter().any(|r| r == pname)).then(|| (o, fi, rel.to_string()))
        })
    })
}

/// A child relationship subquery in the select list: the children whose lookup points at the row.
pub(super) fn compile_child(ctx: Ctx, obj: usize, sub: &Query, pos: usize) -> Result<Col, SoqlError> {
    let schema = ctx.schema;
    let Some((cobj, cfield, cname)) = child_relationship(schema, obj, &sub.from.text) else {
        return Err(SoqlError::at(
            "INVALID_TYPE",
            format!("Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", sub.from.text),
            sub.from.pos,
        ));
    };
    let plan = compile_on(ctx, sub, cobj, false)?;
    if plan.is_aggregate() || plan.count_only {
        return Err(SoqlError::malformed("aggregate functions are not allowed in relationship subqueries", pos));
    }
    Ok(Col::Child { name: cname, obj: cobj, field: cfield, plan: Box::new(plan) })
}

/// A semi-join's subquery; its ID set is computed once, on first use.
#[derive(Debug)]
pub(super) struct SemiJoin {
    pub(super) plan: Plan,
    pub(super) field: FieldRef,
    pub(super) ids: OnceLock<HashSet<Box<str>>>,
}

impl SemiJoin {
    /// The IDs the subquery selects, computed on first use and kept for the rest of the query.
    pub(super) fn ids(&self, schema: &Schema, store: &Store) -> &HashSet<Box<str>> {
        self.ids.get_or_init(|| {
            let seqs = super::execute(&self.plan, schema, store, false);
            let table = &store.tables[self.plan.obj];
            seqs.iter()
                .filter_map(|s| table.recs.get(s))
                .filter_map(|r| self.field.get(schema, store, self.plan.obj, r).as_str().map(Box::from))
                .collect()
        })
    }
}

/// `field [NOT] IN (SELECT …)`: both sides must be ID or reference fields, the subquery must
/// select exactly one field.
pub(super) fn compile_semi_join(
    ctx: Ctx,
    obj: usize,
    field: &Path,
    query: &Query,
    value_pos: usize,
) -> Result<(FieldRef, SemiJoin), SoqlError> {
    let schema = ctx.schema;
    let (fr, _) = resolve(schema, obj, field)?;
    if !matches!(fr.ftype, FieldType::Id | FieldType::Reference) {
        return Err(SoqlError::at(
            "INVALID_FIELD",
            format!("Field {} must be an Id or a reference field to be used in a semi join", leaf_def(schema, &fr).name),
            field.pos,
        ));
    }
    if query.select.len() != 1 || !query.group_by.is_empty() {
        return Err(SoqlError::malformed("The selected field in a semi join must be a single Id or reference field", value_pos));
    }
    let SelectItem::Field(p, None) = &query.select[0] else {
        return Err(SoqlError::malformed("The selected field in a semi join must be a single Id or reference field", value_pos));
    };
    let plan = compile_in(ctx, query, false)?;
    let (sub_fr, _) = resolve(schema, plan.obj, p)?;
    if !matches!(sub_fr.ftype, FieldType::Id | FieldType::Reference) {
        return Err(SoqlError::at(
            "INVALID_FIELD",
            format!("Field {} must be an Id or a reference field to be used in a semi join", leaf_def(schema, &sub_fr).name),
            p.pos,
        ));
    }
    Ok((fr, SemiJoin { plan, field: sub_fr, ids: OnceLock::new() }))
}
