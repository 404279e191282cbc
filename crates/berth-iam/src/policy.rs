//! The IAM policy language (identity policies, ECR repository policies and registry
//! policies) and its evaluation.
//!
//! There is no maintained Rust crate that parses and evaluates IAM policies with AWS's
//! semantics (principal matching, condition operators with `IfExists` and set qualifiers,
//! policy variables, cross-account rules), so this module implements them from the IAM
//! User Guide ("IAM JSON policy elements reference" and "Policy evaluation logic").
//! Parsing walks a `serde_json::Value` by hand rather than deriving `Deserialize`, because
//! the point of a policy parser is a precise message (`Statement[1].Effect must be Allow or
//! Deny`) and IAM's "string or array", "object or array" shapes defeat derived errors.
//!
//! Evaluation (one request, no SCPs, permission boundaries or session policies):
//! 1. any applicable `Deny` in any policy → [`Decision::ExplicitDeny`];
//! 2. same account: an `Allow` in an identity policy, or an `Allow` in a resource policy
//!    that names this principal (by ARN, `*` or through `NotPrincipal`) → [`Decision::Allow`];
//! 3. cross account: an identity `Allow` *and* a resource-policy `Allow` whose principal
//!    matches (naming the principal's account matches every principal in it);
//! 4. otherwise [`Decision::ImplicitDeny`].
//!
//! As in AWS, a resource policy that names only the principal's own *account* (`"AWS":
//! "123456789012"` or the `:root` ARN) does not on its own grant a user of that account
//! anything: naming the account delegates the decision to that account's identity
//! policies. Treating it as a grant would let any user of an account escalate through a
//! repository policy written for cross-account access.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// A parsing failure. The message names the element that is wrong, e.g.
/// `Statement[1].Effect must be Allow or Deny, not "allow"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
    /// Longer than the document kind's length constraint (characters, whitespace included).
    #[error("policy document is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    /// IAM's policy size quota, which does not count whitespace.
    #[error("Cannot exceed quota for PolicySize: {max} (the document has {len} characters other than whitespace)")]
    TooLarge { len: usize, max: usize },
    #[error("policy has {count} statements; at most {max} are allowed")]
    TooManyStatements { count: usize, max: usize },
}

/// ECR's `RepositoryPolicyText` and `RegistryPolicyText`: at most 10,240 characters.
pub const MAX_RESOURCE_POLICY_CHARS: usize = 10_240;
/// IAM's `policyDocumentType` length constraint, whitespace included.
pub const MAX_IDENTITY_POLICY_CHARS: usize = 131_072;
/// IAM's quota on a managed policy's size: 6,144 characters, whitespace not counted.
pub const MAX_IDENTITY_POLICY_SIZE: usize = 6_144;
/// Statements per document. Neither IAM nor ECR sets one; the length limits already allow
/// about 200 minimal statements, and every statement is matched on every request, so berth
/// accepts at most this many (real policies have a handful; one statement can name many
/// principals, actions and resources).
pub const MAX_STATEMENTS: usize = 100;

fn check_statement_count(policy: &Policy) -> Result<(), PolicyError> {
    if policy.statements.len() > MAX_STATEMENTS {
        return Err(PolicyError::TooManyStatements { count: policy.statements.len(), max: MAX_STATEMENTS });
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(msg.into())
}

/// The policy language version. Policy variables (`${aws:username}`) are only substituted
/// under 2012-10-17; under 2008-10-17 they are literal text, as in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2008_10_17,
    V2012_10_17,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    version: Version,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a policy.
#[derive(Debug, Clone)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: Option<PrincipalElement>,
    actions: Negatable<Vec<Glob>>,
    resources: Option<Negatable<Vec<String>>>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Negatable<T> {
    negated: bool,
    items: T,
}

#[derive(Debug, Clone)]
struct PrincipalElement {
    negated: bool,
    /// `"Principal": "*"` (or `{"AWS": "*"}`).
    any: bool,
    aws: Vec<AwsPrincipal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AwsPrincipal {
    Any,
    Account(String),
    Arn(String),
}

impl Policy {
    /// Parses any policy document: identity or resource-based. `Resource` may be omitted
    /// (resource policies apply to the resource they are attached to).
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(doc) = value else {
            return Err(invalid("policy must be a JSON object"));
        };
        for key in doc.keys() {
            if !["Version", "Id", "Statement"].contains(&key.as_str()) {
                return Err(invalid(format!("unknown policy element {key:?} (expected Version, Id, Statement)")));
            }
        }
        let version = match doc.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(other) => return Err(invalid(format!("Version must be \"2012-10-17\" or \"2008-10-17\", not {other}"))),
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid("Id must be a string")),
        };
        let statements = match doc.get("Statement") {
            None => return Err(invalid("policy has no Statement")),
            Some(Value::Object(s)) => vec![Statement::parse(s, "Statement")?],
            Some(Value::Array(list)) if list.is_empty() => return Err(invalid("Statement must not be empty")),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let path = format!("Statement[{i}]");
                    match s {
                        Value::Object(s) => Statement::parse(s, &path),
                        _ => Err(invalid(format!("{path} must be an object"))),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("Statement must be an object or an array of objects")),
        };
        Ok(Policy { version, id, statements })
    }

    /// Parses an identity policy (attached to a user): every statement needs `Resource` or
    /// `NotResource` and none may name a `Principal`, as IAM requires.
    ///
    /// A document being attached must also fit IAM's limits: [`MAX_IDENTITY_POLICY_CHARS`]
    /// characters, [`MAX_IDENTITY_POLICY_SIZE`] of them other than whitespace, and at most
    /// [`MAX_STATEMENTS`] statements. (Stored documents are read back with [`Policy::parse`].)
    pub fn parse_identity(json: &str) -> Result<Policy, PolicyError> {
        let len = json.chars().count();
        if len > MAX_IDENTITY_POLICY_CHARS {
            return Err(PolicyError::TooLong { len, max: MAX_IDENTITY_POLICY_CHARS });
        }
        let size = json.chars().filter(|c| !c.is_whitespace()).count();
        if size > MAX_IDENTITY_POLICY_SIZE {
            return Err(PolicyError::TooLarge { len: size, max: MAX_IDENTITY_POLICY_SIZE });
        }
        let policy = Self::parse(json)?;
        check_statement_count(&policy)?;
        for (i, s) in policy.statements.iter().enumerate() {
            if s.principal.is_some() {
                return Err(invalid(format!("Statement[{i}] has a Principal, which identity policies must not have")));
            }
            if s.resources.is_none() {
                return Err(invalid(format!("Statement[{i}] must have Resource or NotResource")));
            }
        }
        Ok(policy)
    }

    /// Parses a resource-based policy (repository or registry policy): every statement needs
    /// `Principal` or `NotPrincipal`, as ECR requires.
    ///
    /// At most [`MAX_RESOURCE_POLICY_CHARS`] characters (ECR's limit) and [`MAX_STATEMENTS`]
    /// statements. (Stored documents are read back with [`Policy::parse`].)
    pub fn parse_resource(json: &str) -> Result<Policy, PolicyError> {
        let len = json.chars().count();
        if len > MAX_RESOURCE_POLICY_CHARS {
            return Err(PolicyError::TooLong { len, max: MAX_RESOURCE_POLICY_CHARS });
        }
        let policy = Self::parse(json)?;
        check_statement_count(&policy)?;
        if let Some(i) = policy.statements.iter().position(|s| s.principal.is_none()) {
            return Err(invalid(format!("Statement[{i}] must have Principal or NotPrincipal")));
        }
        Ok(policy)
    }

    pub fn version(&self) -> Version {
        self.version
    }
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    pub fn effect(&self) -> Effect {
        self.effect
    }

    fn parse(obj: &Map<String, Value>, path: &str) -> Result<Statement, PolicyError> {
        const ELEMENTS: [&str; 10] =
            ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition", "Id"];
        for key in obj.keys() {
            if !ELEMENTS.contains(&key.as_str()) {
                return Err(invalid(format!("{path} has unknown element {key:?}")));
            }
        }
        let sid = match obj.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(invalid(format!("{path}.Sid must be a string"))),
        };
        let effect = match obj.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            None => return Err(invalid(format!("{path}.Effect is required (Allow or Deny)"))),
            Some(other) => return Err(invalid(format!("{path}.Effect must be Allow or Deny, not {other}"))),
        };
        let principal = match one_of(obj, path, "Principal", "NotPrincipal")? {
            None => None,
            Some((negated, name, v)) => Some(parse_principal(v, &format!("{path}.{name}"), negated)?),
        };
        let actions = match one_of(obj, path, "Action", "NotAction")? {
            None => return Err(invalid(format!("{path} must have Action or NotAction"))),
            Some((negated, name, v)) => {
                let path = format!("{path}.{name}");
                let items = string_list(v, &path)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| parse_action(&a, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?;
                Negatable { negated, items }
            }
        };
        let resources = match one_of(obj, path, "Resource", "NotResource")? {
            None => None,
            Some((negated, name, v)) => {
                let path = format!("{path}.{name}");
                let items = string_list(v, &path)?;
                for (i, r) in items.iter().enumerate() {
                    validate_resource(r, &format!("{path}[{i}]"))?;
                }
                Some(Negatable { negated, items })
            }
        };
        let conditions = match obj.get("Condition") {
            None => Vec::new(),
            Some(v) => parse_conditions(v, &format!("{path}.Condition"))?,
        };
        Ok(Statement { sid, effect, principal, actions, resources, conditions })
    }
}

/// At most one of a positive element and its `Not` form.
fn one_of<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    pos: &'static str,
    neg: &'static str,
) -> Result<Option<(bool, &'static str, &'a Value)>, PolicyError> {
    match (obj.get(pos), obj.get(neg)) {
        (Some(_), Some(_)) => Err(invalid(format!("{path} has both {pos} and {neg}"))),
        (Some(v), None) => Ok(Some((false, pos, v))),
        (None, Some(v)) => Ok(Some((true, neg, v))),
        (None, None) => Ok(None),
    }
}

/// IAM's "a string or a non-empty array of strings".
fn string_list(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) if list.is_empty() => Err(invalid(format!("{path} must not be empty"))),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(format!("{path}[{i}] must be a string"))),
            })
            .collect(),
        _ => Err(invalid(format!("{path} must be a string or an array of strings"))),
    }
}

fn parse_action(action: &str, path: &str) -> Result<Glob, PolicyError> {
    let valid = action == "*"
        || action.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?' || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(invalid(format!(
            "{path} {action:?} is not a valid action (expected \"*\" or service:ActionName like ecr:BatchGetImage; wildcards * and ? are allowed)"
        )));
    }
    // Action names are case-insensitive in IAM, so patterns are stored lowercased.
    Ok(Glob::literal_pattern(&action.to_lowercase()))
}

fn validate_resource(resource: &str, path: &str) -> Result<(), PolicyError> {
    // Colons inside `${aws:...}` variables are not ARN separators.
    let colons = strip_variables(resource).matches(':').count();
    if resource == "*" || (resource.starts_with("arn:") && colons >= 5) {
        Ok(())
    } else {
        Err(invalid(format!("{path} {resource:?} must be \"*\" or an ARN (arn:partition:service:region:account:resource)")))
    }
}

fn strip_variables(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse_principal(v: &Value, path: &str, negated: bool) -> Result<PrincipalElement, PolicyError> {
    let mut element = PrincipalElement { negated, any: false, aws: Vec::new() };
    match v {
        Value::String(s) if s == "*" => element.any = true,
        Value::Object(map) if !map.is_empty() => {
            for (kind, value) in map {
                let kind_path = format!("{path}.{kind}");
                let values = string_list(value, &kind_path)?;
                match kind.as_str() {
                    "AWS" => {
                        for (i, p) in values.iter().enumerate() {
                            element.aws.push(parse_aws_principal(p, &format!("{kind_path}[{i}]"))?);
                        }
                    }
                    // Service, federated and canonical-user principals are accepted so AWS
                    // policies load unchanged, but berth principals are never any of them.
                    "Service" | "Federated" | "CanonicalUser" => {}
                    other => {
                        return Err(invalid(format!(
                            "{path} has unknown principal type {other:?} (expected AWS, Service, Federated or CanonicalUser)"
                        )));
                    }
                }
            }
        }
        _ => return Err(invalid(format!("{path} must be \"*\" or an object like {{\"AWS\": \"123456789012\"}}"))),
    }
    Ok(element)
}

fn parse_aws_principal(p: &str, path: &str) -> Result<AwsPrincipal, PolicyError> {
    if p == "*" {
        return Ok(AwsPrincipal::Any);
    }
    if is_account_id(p) {
        return Ok(AwsPrincipal::Account(p.to_string()));
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    if let [arn, _partition, service, _region, account, resource] = parts.as_slice() {
        if *arn == "arn" && !service.is_empty() && !resource.is_empty() {
            if *service == "iam" && *resource == "root" && is_account_id(account) {
                return Ok(AwsPrincipal::Account(account.to_string()));
            }
            return Ok(AwsPrincipal::Arn(p.to_string()));
        }
    }
    Err(invalid(format!("{path} {p:?} must be \"*\", a 12-digit account id or an IAM ARN")))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------
// Conditions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordering {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The positive test an operator performs; negated operators (`StringNotEquals`,
/// `NotIpAddress`, ...) are the same kind with `negated` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    /// ArnEquals and ArnLike behave identically in IAM: both take wildcards.
    ArnLike,
    Bool,
    IpAddress,
    Date(Ordering),
    Numeric(Ordering),
    Null,
}

#[derive(Debug, Clone)]
struct Operator {
    name: String,
    kind: OpKind,
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
}

#[derive(Debug, Clone)]
enum Values {
    /// Kept raw: policy variables are substituted per request.
    Strings(Vec<String>),
    Bools(Vec<bool>),
    Ips(Vec<IpNet>),
    Dates(Vec<OffsetDateTime>),
    Numbers(Vec<f64>),
}

#[derive(Debug, Clone)]
struct Condition {
    op: Operator,
    key: String,
    values: Values,
}

fn parse_operator(name: &str, path: &str) -> Result<Operator, PolicyError> {
    let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::None, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    use Ordering::*;
    let (kind, negated) = match base {
        "StringEquals" => (OpKind::StringEquals, false),
        "StringNotEquals" => (OpKind::StringEquals, true),
        "StringEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (OpKind::StringEqualsIgnoreCase, true),
        "StringLike" => (OpKind::StringLike, false),
        "StringNotLike" => (OpKind::StringLike, true),
        "ArnEquals" | "ArnLike" => (OpKind::ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (OpKind::ArnLike, true),
        "Bool" => (OpKind::Bool, false),
        "IpAddress" => (OpKind::IpAddress, false),
        "NotIpAddress" => (OpKind::IpAddress, true),
        "DateEquals" => (OpKind::Date(Eq), false),
        "DateNotEquals" => (OpKind::Date(Eq), true),
        "DateLessThan" => (OpKind::Date(Lt), false),
        "DateLessThanEquals" => (OpKind::Date(Le), false),
        "DateGreaterThan" => (OpKind::Date(Gt), false),
        "DateGreaterThanEquals" => (OpKind::Date(Ge), false),
        "NumericEquals" => (OpKind::Numeric(Eq), false),
        "NumericNotEquals" => (OpKind::Numeric(Eq), true),
        "NumericLessThan" => (OpKind::Numeric(Lt), false),
        "NumericLessThanEquals" => (OpKind::Numeric(Le), false),
        "NumericGreaterThan" => (OpKind::Numeric(Gt), false),
        "NumericGreaterThanEquals" => (OpKind::Numeric(Ge), false),
        "Null" if if_exists => return Err(invalid(format!("{path}: {name} is not allowed: Null cannot take the IfExists suffix"))),
        "Null" => (OpKind::Null, false),
        _ => return Err(invalid(format!("{path}: unknown condition operator {name}"))),
    };
    Ok(Operator { name: name.to_string(), kind, negated, if_exists, set })
}

fn parse_conditions(v: &Value, path: &str) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(invalid(format!("{path} must be an object of {{operator: {{key: values}}}}")));
    };
    let mut out = Vec::new();
    for (op_name, block) in ops {
        let op = parse_operator(op_name, path)?;
        let op_path = format!("{path}.{op_name}");
        let Value::Object(keys) = block else {
            return Err(invalid(format!("{op_path} must be an object of {{key: values}}")));
        };
        if keys.is_empty() {
            return Err(invalid(format!("{op_path} must not be empty")));
        }
        for (key, raw) in keys {
            let key_path = format!("{op_path}.{key}");
            if key.is_empty() {
                return Err(invalid(format!("{op_path} has an empty condition key")));
            }
            let strings = condition_values(raw, &key_path)?;
            let values = typed_values(&op, strings, &key_path)?;
            out.push(Condition { op: op.clone(), key: key.clone(), values });
        }
    }
    Ok(out)
}

/// Condition values may be strings, numbers or booleans, alone or in a non-empty array.
fn condition_values(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(list) if list.is_empty() => Err(invalid(format!("{path} must not be empty"))),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, item)| scalar(item).ok_or_else(|| invalid(format!("{path}[{i}] must be a string, number or boolean"))))
            .collect(),
        other => {
            scalar(other).map(|s| vec![s]).ok_or_else(|| invalid(format!("{path} must be a string, number, boolean or an array of them")))
        }
    }
}

fn typed_values(op: &Operator, raw: Vec<String>, path: &str) -> Result<Values, PolicyError> {
    let each = |what: &str, parse: &dyn Fn(&str) -> bool| -> Result<(), PolicyError> {
        match raw.iter().find(|v| !parse(v)) {
            Some(bad) => Err(invalid(format!("{path}: {bad:?} is not {what} (operator {})", op.name))),
            None => Ok(()),
        }
    };
    Ok(match op.kind {
        OpKind::StringEquals | OpKind::StringEqualsIgnoreCase | OpKind::StringLike => Values::Strings(raw),
        OpKind::ArnLike => {
            each("an ARN", &|v| v == "*" || v.starts_with("arn:") || v.starts_with("${"))?;
            Values::Strings(raw)
        }
        OpKind::Bool | OpKind::Null => {
            each("true or false", &|v| parse_bool(v).is_some())?;
            Values::Bools(raw.iter().filter_map(|v| parse_bool(v)).collect())
        }
        OpKind::IpAddress => {
            each("an IP address or CIDR block", &|v| parse_ip_net(v).is_some())?;
            Values::Ips(raw.iter().filter_map(|v| parse_ip_net(v)).collect())
        }
        OpKind::Date(_) => {
            each("a date (ISO 8601 like 2024-01-31T00:00:00Z, or epoch seconds)", &|v| parse_date(v).is_some())?;
            Values::Dates(raw.iter().filter_map(|v| parse_date(v)).collect())
        }
        OpKind::Numeric(_) => {
            each("a number", &|v| parse_number(v).is_some())?;
            Values::Numbers(raw.iter().filter_map(|v| parse_number(v)).collect())
        }
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A CIDR block, or a bare address meaning just that host.
fn parse_ip_net(v: &str) -> Option<IpNet> {
    v.parse::<IpNet>().ok().or_else(|| v.parse::<IpAddr>().ok().map(IpNet::from))
}

fn parse_number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// ISO 8601 / RFC 3339 date-time, a bare `YYYY-MM-DD` (midnight UTC) or epoch seconds.
fn parse_date(v: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    if let Ok(d) = Date::parse(v, format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc());
    }
    if let Ok(secs) = v.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    None
}

// ---------------------------------------------------------------------------------------
// Wildcards and policy variables

/// One element of a wildcard pattern. Characters that came from a policy variable (or from
/// `${*}`) are literals even if they are `*` or `?`, which is why this is not a plain
/// string glob crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    Question,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob(Vec<Tok>);

/// Does `s` match the IAM wildcard `pattern` (`*` any run, `?` one character)? Case-sensitive.
pub fn wildcard_matches(pattern: &str, s: &str) -> bool {
    Glob::literal_pattern(pattern).matches(s)
}

impl Glob {
    fn literal_pattern(s: &str) -> Glob {
        Glob(
            s.chars()
                .map(|c| match c {
                    '*' => Tok::Star,
                    '?' => Tok::Question,
                    c => Tok::Lit(c),
                })
                .collect(),
        )
    }

    /// Glob match, `*` = any run (including empty and `/` or `:`), `?` = one character.
    /// Iterative with single-star backtracking: linear in practice, no recursion blow-up.
    fn matches(&self, s: &str) -> bool {
        let p = &self.0;
        let s: Vec<char> = s.chars().collect();
        let (mut pi, mut si) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(Tok::Star) => {
                    backtrack = Some((pi, si));
                    pi += 1;
                    continue;
                }
                Some(Tok::Question) => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                Some(Tok::Lit(c)) if *c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((star_p, star_s)) => {
                    pi = star_p + 1;
                    si = star_s + 1;
                    backtrack = Some((star_p, star_s + 1));
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|t| *t == Tok::Star)
    }

    /// The pattern as plain text (`*` and `?` literal), for the `Equals` operators.
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|t| match t {
                Tok::Lit(c) => *c,
                Tok::Star => '*',
                Tok::Question => '?',
            })
            .collect()
    }

    /// Splits on the first five literal `:`, giving the six ARN components.
    fn arn_components(&self) -> Vec<Glob> {
        let mut parts = vec![Glob(Vec::new())];
        for t in &self.0 {
            match t {
                Tok::Lit(':') if parts.len() < 6 => parts.push(Glob(Vec::new())),
                t => {
                    if let Some(last) = parts.last_mut() {
                        last.0.push(*t);
                    }
                }
            }
        }
        parts
    }
}

/// `ArnLike`: the six colon-separated components are matched separately, so a `*` cannot
/// swallow a `:`. Values that are not six-part ARNs fall back to a whole-string match.
fn arn_like(pattern: &Glob, value: &str) -> bool {
    let p = pattern.arn_components();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    if p.len() == 6 && v.len() == 6 {
        p.iter().zip(v).all(|(p, v)| p.matches(v))
    } else {
        pattern.matches(value)
    }
}

/// Expands a pattern that may contain policy variables. Returns `None` if it references a
/// variable that has no (single) value in this request: AWS then treats the element as not
/// matching.
fn expand(raw: &str, version: Version, ctx: &Ctx) -> Option<Glob> {
    if version == Version::V2008_10_17 || !raw.contains("${") {
        return Some(Glob::literal_pattern(raw));
    }
    let mut toks = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        toks.extend(Glob::literal_pattern(&rest[..start]).0);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        let value = match inner {
            "*" | "?" | "$" => inner.to_string(),
            _ => {
                // `${key, 'default'}` supplies a value when the key is absent.
                let (key, default) = match inner.split_once(',') {
                    Some((k, d)) => (k.trim(), Some(d.trim().trim_matches('\'').to_string())),
                    None => (inner.trim(), None),
                };
                match ctx.get(key).as_deref() {
                    Some([single]) => single.clone(),
                    _ => default?,
                }
            }
        };
        toks.extend(value.chars().map(Tok::Lit));
        rest = &rest[start + end + 1..];
    }
    toks.extend(Glob::literal_pattern(rest).0);
    Some(Glob(toks))
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::123456789012:user/alice` or `arn:aws:iam::123456789012:root`.
    pub arn: String,
    /// 12-digit account id.
    pub account: String,
}

impl Principal {
    /// Builds a principal from its ARN, taking the account from the ARN's fifth field.
    pub fn from_arn(arn: &str) -> Option<Principal> {
        let account = arn.split(':').nth(4).filter(|a| is_account_id(a))?;
        arn.starts_with("arn:").then(|| Principal { arn: arn.to_string(), account: account.to_string() })
    }

    /// The account's root user (`arn:aws:iam::<account>:root`).
    pub fn is_root(&self) -> bool {
        self.arn.ends_with(":root") && self.arn.split(':').nth(4) == Some(self.account.as_str())
    }

    /// `aws:username`: the last path segment of an IAM user ARN.
    fn username(&self) -> Option<&str> {
        let resource = self.arn.splitn(6, ':').nth(5)?;
        resource.strip_prefix("user/").and_then(|p| p.rsplit('/').next())
    }
}

/// One authorization question: may `principal` do `action` on `resource`?
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    pub principal: &'a Principal,
    /// `ecr:BatchGetImage`
    pub action: &'a str,
    /// `arn:aws:ecr:us-east-1:123456789012:repository/team/app`, or `*` for actions without
    /// a resource (GetAuthorizationToken).
    pub resource: &'a str,
    /// Account that owns the resource.
    pub resource_account: &'a str,
    /// Condition keys (`aws:SourceIp`, `aws:CurrentTime`, `aws:SecureTransport`,
    /// `ecr:ResourceTag/<k>`, ...). Names are matched case-insensitively. `aws:PrincipalArn`,
    /// `aws:PrincipalAccount` and `aws:username` default to values derived from `principal`.
    pub context: &'a HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::ExplicitDeny => "explicit deny",
            Decision::ImplicitDeny => "implicit deny",
        })
    }
}

/// Context-key lookup with IAM's case-insensitive key names and principal-derived defaults.
struct Ctx<'a> {
    req: &'a AuthzRequest<'a>,
}

impl Ctx<'_> {
    fn get(&self, key: &str) -> Option<Vec<String>> {
        let ctx = self.req.context;
        if let Some(v) = ctx.get(key) {
            return Some(v.clone());
        }
        if let Some((_, v)) = ctx.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Some(v.clone());
        }
        let p = self.req.principal;
        let derived = match key.to_ascii_lowercase().as_str() {
            "aws:principalarn" => Some(p.arn.clone()),
            "aws:principalaccount" => Some(p.account.clone()),
            "aws:username" => p.username().map(str::to_string),
            _ => None,
        };
        derived.map(|v| vec![v])
    }
}

/// How a statement's principal element matched the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PrincipalMatch {
    No,
    /// Only through the caller's account (`"AWS": "123456789012"` / `:root`).
    Account,
    /// By ARN, `*`, or by not being excluded by `NotPrincipal`.
    Specific,
}

/// Decides a request. `identity`: the principal's own policies (including managed ones).
/// `resource`: resource-based policies of the target — the repository policy and the
/// registry policy of the resource's account.
pub fn authorize(req: &AuthzRequest, identity: &[&Policy], resource: &[&Policy]) -> Decision {
    match evaluate(req, identity, resource) {
        None => Decision::ExplicitDeny,
        Some((identity_allows, resource_allows)) => {
            let allowed = if req.principal.account == req.resource_account {
                identity_allows || resource_allows == PrincipalMatch::Specific
            } else {
                identity_allows && resource_allows != PrincipalMatch::No
            };
            if allowed {
                Decision::Allow
            } else {
                Decision::ImplicitDeny
            }
        }
    }
}

/// Decides a request on a KMS key, whose key policy is required rather than optional: in
/// the key's own account an identity policy counts only where the key policy lets the
/// account's IAM policies decide (its principal is the account), as KMS has it; another
/// account needs both, as everywhere.
pub fn authorize_with_key_policy(req: &AuthzRequest, identity: &[&Policy], key_policy: &Policy) -> Decision {
    match evaluate(req, identity, &[key_policy]) {
        None => Decision::ExplicitDeny,
        Some((identity_allows, key_allows)) => {
            let allowed = key_allows == PrincipalMatch::Specific && req.principal.account == req.resource_account
                || (key_allows != PrincipalMatch::No && identity_allows);
            if allowed {
                Decision::Allow
            } else {
                Decision::ImplicitDeny
            }
        }
    }
}

/// Every statement that applies: None on an explicit deny, else whether an identity policy
/// allows and how well a resource policy's principal matched.
fn evaluate(req: &AuthzRequest, identity: &[&Policy], resource: &[&Policy]) -> Option<(bool, PrincipalMatch)> {
    let ctx = Ctx { req };
    let mut identity_allows = false;
    let mut resource_allows = PrincipalMatch::No;
    for policy in identity {
        for s in &policy.statements {
            // Identity statements have no Principal (parse_identity enforces it); if a
            // generic one does, it must still match the caller.
            let m = s.principal.as_ref().map_or(PrincipalMatch::Specific, |p| p.matches(req.principal));
            if m != PrincipalMatch::No && s.applies(req, policy.version, &ctx) {
                match s.effect {
                    Effect::Deny => return None,
                    Effect::Allow => identity_allows = true,
                }
            }
        }
    }
    for policy in resource {
        for s in &policy.statements {
            // A resource-policy statement without a principal grants nobody anything.
            let m = s.principal.as_ref().map_or(PrincipalMatch::No, |p| p.matches(req.principal));
            if m != PrincipalMatch::No && s.applies(req, policy.version, &ctx) {
                match s.effect {
                    Effect::Deny => return None,
                    Effect::Allow => resource_allows = resource_allows.max(m),
                }
            }
        }
    }
    Some((identity_allows, resource_allows))
}

impl PrincipalElement {
    fn matches(&self, p: &Principal) -> PrincipalMatch {
        let mut best = if self.any { PrincipalMatch::Specific } else { PrincipalMatch::No };
        for a in &self.aws {
            let m = match a {
                AwsPrincipal::Any => PrincipalMatch::Specific,
                AwsPrincipal::Account(acct) if *acct == p.account => {
                    // The root user *is* the account, so naming the account names it.
                    if p.is_root() {
                        PrincipalMatch::Specific
                    } else {
                        PrincipalMatch::Account
                    }
                }
                AwsPrincipal::Arn(arn) if *arn == p.arn => PrincipalMatch::Specific,
                _ => PrincipalMatch::No,
            };
            best = best.max(m);
        }
        if self.negated {
            // NotPrincipal applies to everyone it does not list.
            if best == PrincipalMatch::No {
                PrincipalMatch::Specific
            } else {
                PrincipalMatch::No
            }
        } else {
            best
        }
    }
}

impl Statement {
    /// Action, resource and conditions (the principal is checked by the caller).
    fn applies(&self, req: &AuthzRequest, version: Version, ctx: &Ctx) -> bool {
        let action = req.action.to_lowercase();
        let action_listed = self.actions.items.iter().any(|g| g.matches(&action));
        if action_listed == self.actions.negated {
            return false;
        }
        if let Some(resources) = &self.resources {
            let listed = resources.items.iter().any(|r| expand(r, version, ctx).is_some_and(|g| g.matches(req.resource)));
            if listed == resources.negated {
                return false;
            }
        }
        // Every condition must hold (keys and operators AND; values within one OR).
        self.conditions.iter().all(|c| c.holds(version, ctx))
    }
}

impl Condition {
    fn holds(&self, version: Version, ctx: &Ctx) -> bool {
        let op = &self.op;
        let present = ctx.get(&self.key).filter(|v| !v.is_empty());
        if op.kind == OpKind::Null {
            // Null: true means "the key is absent", false means "the key is present".
            let Values::Bools(expect) = &self.values else {
                return false;
            };
            return expect.iter().any(|want_absent| *want_absent == present.is_none());
        }
        let Some(actual) = present else {
            return match op.set {
                // Vacuously true: all of no values match.
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => op.if_exists,
                // AWS: a missing key fails positive operators and satisfies negated ones.
                SetQualifier::None => op.if_exists || op.negated,
            };
        };
        // For one context value: does it match any policy value (the positive test)?
        let positive = |v: &str| self.matches_any(v, version, ctx);
        match op.set {
            SetQualifier::ForAnyValue => actual.iter().any(|v| positive(v) != op.negated),
            SetQualifier::ForAllValues => actual.iter().all(|v| positive(v) != op.negated),
            SetQualifier::None if op.negated => !actual.iter().any(|v| positive(v)),
            SetQualifier::None => actual.iter().any(|v| positive(v)),
        }
    }

    fn matches_any(&self, actual: &str, version: Version, ctx: &Ctx) -> bool {
        use std::cmp::Ordering as Cmp;
        let compare = |ord: Ordering, c: Cmp| match ord {
            Ordering::Eq => c == Cmp::Equal,
            Ordering::Lt => c == Cmp::Less,
            Ordering::Le => c != Cmp::Greater,
            Ordering::Gt => c == Cmp::Greater,
            Ordering::Ge => c != Cmp::Less,
        };
        match (&self.values, self.op.kind) {
            (Values::Strings(patterns), kind) => patterns.iter().filter_map(|p| expand(p, version, ctx)).any(|g| match kind {
                OpKind::StringEquals => g.text() == actual,
                OpKind::StringEqualsIgnoreCase => g.text().to_lowercase() == actual.to_lowercase(),
                OpKind::StringLike => g.matches(actual),
                OpKind::ArnLike => arn_like(&g, actual),
                _ => false,
            }),
            (Values::Bools(expected), _) => parse_bool(actual).is_some_and(|b| expected.contains(&b)),
            (Values::Ips(nets), _) => actual.trim().parse::<IpAddr>().is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            (Values::Dates(dates), OpKind::Date(ord)) => parse_date(actual).is_some_and(|a| dates.iter().any(|d| compare(ord, a.cmp(d)))),
            (Values::Numbers(nums), OpKind::Numeric(ord)) => {
                parse_number(actual).is_some_and(|a| nums.iter().any(|n| a.partial_cmp(n).is_some_and(|c| compare(ord, c))))
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// AWS managed policies for ECR, as documented in "AWS managed policies for Amazon Elastic
// Container Registry" (ECR User Guide) and the AWS Managed Policy reference.

/// `arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess`
pub const AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["ecr:*", "cloudtrail:LookupEvents"],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": ["iam:CreateServiceLinkedRole"],
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "iam:AWSServiceName": ["replication.ecr.amazonaws.com"]
        }
      }
    }
  ]
}"#;

/// `arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser` (v3): read and push, but no
/// repository deletion or policy changes.
pub const AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage"
      ],
      "Resource": "*"
    }
  ]
}"#;

/// `arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly` (v3).
pub const AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings",
        "cloudtrail:LookupEvents"
      ],
      "Resource": "*"
    }
  ]
}"#;

// The three ECR Public policies are AWS's documents as published in the AWS Managed Policy
// Reference (each at version v1, 2020-12-01), action for action.

/// `arn:aws:iam::aws:policy/AmazonElasticContainerRegistryPublicFullAccess`
pub const AMAZON_ECR_PUBLIC_FULL_ACCESS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["ecr-public:*", "sts:GetServiceBearerToken"],
      "Resource": "*"
    }
  ]
}"#;

/// `arn:aws:iam::aws:policy/AmazonElasticContainerRegistryPublicPowerUser`: read and push,
/// no repository creation or deletion, no policy or catalog changes.
pub const AMAZON_ECR_PUBLIC_POWER_USER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
        "ecr-public:BatchCheckLayerAvailability",
        "ecr-public:GetRepositoryPolicy",
        "ecr-public:DescribeRepositories",
        "ecr-public:DescribeRegistries",
        "ecr-public:DescribeImages",
        "ecr-public:DescribeImageTags",
        "ecr-public:GetRepositoryCatalogData",
        "ecr-public:GetRegistryCatalogData",
        "ecr-public:InitiateLayerUpload",
        "ecr-public:UploadLayerPart",
        "ecr-public:CompleteLayerUpload",
        "ecr-public:PutImage"
      ],
      "Resource": "*"
    }
  ]
}"#;

/// `arn:aws:iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly`
pub const AMAZON_ECR_PUBLIC_READ_ONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
        "ecr-public:BatchCheckLayerAvailability",
        "ecr-public:GetRepositoryPolicy",
        "ecr-public:DescribeRepositories",
        "ecr-public:DescribeRegistries",
        "ecr-public:DescribeImages",
        "ecr-public:DescribeImageTags",
        "ecr-public:GetRepositoryCatalogData",
        "ecr-public:GetRegistryCatalogData"
      ],
      "Resource": "*"
    }
  ]
}"#;

/// Names of the managed policies [`managed_policy`] knows.
pub const MANAGED_POLICY_NAMES: [&str; 6] = [
    "AmazonEC2ContainerRegistryFullAccess",
    "AmazonEC2ContainerRegistryPowerUser",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonElasticContainerRegistryPublicFullAccess",
    "AmazonElasticContainerRegistryPublicPowerUser",
    "AmazonElasticContainerRegistryPublicReadOnly",
];

/// The JSON of an AWS managed ECR or ECR Public policy, by name or by ARN
/// (`arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly`).
pub fn managed_policy(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("arn:aws:iam::aws:policy/").unwrap_or(name);
    match name {
        "AmazonEC2ContainerRegistryFullAccess" => Some(AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS),
        "AmazonEC2ContainerRegistryPowerUser" => Some(AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER),
        "AmazonEC2ContainerRegistryReadOnly" => Some(AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY),
        "AmazonElasticContainerRegistryPublicFullAccess" => Some(AMAZON_ECR_PUBLIC_FULL_ACCESS),
        "AmazonElasticContainerRegistryPublicPowerUser" => Some(AMAZON_ECR_PUBLIC_POWER_USER),
        "AmazonElasticContainerRegistryPublicReadOnly" => Some(AMAZON_ECR_PUBLIC_READ_ONLY),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
