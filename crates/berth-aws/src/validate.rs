//! Request validation from an AWS service model, before a request is read into its typed input.
//!
//! The model is a compact extract of a botocore model (e.g. `scripts/gen-ecr-constraints.py`): each
//! operation's input shape and the shapes it reaches, with their required members and
//! constraints. [`Model::check`] walks a JSON request and reports, as AWS's front end does, the
//! members of the wrong JSON type, the required members that are missing, and the values that
//! break a constraint (length, range, pattern, enum, list or map size), nested members included.
//! Nothing here knows a service: an adapter decides which exception each kind becomes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// One service's request shapes.
pub struct Model {
    operations: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
    /// Each pattern compiled once, anchored on the whole value (AWS patterns match the whole value).
    patterns: HashMap<String, Regex>,
}

#[derive(Deserialize)]
struct ModelFile {
    operations: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Shape {
    Structure {
        #[serde(default)]
        required: Vec<String>,
        #[serde(default)]
        members: BTreeMap<String, String>,
    },
    List {
        member: String,
        min: Option<i64>,
        max: Option<i64>,
    },
    Map {
        key: String,
        value: String,
        min: Option<i64>,
        max: Option<i64>,
    },
    String {
        min: Option<i64>,
        max: Option<i64>,
        pattern: Option<String>,
        #[serde(rename = "enum")]
        values: Option<Vec<String>>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Long {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Double {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    /// Base64 text on the wire; its length limits apply to the decoded bytes, which the
    /// action itself decodes, so only the JSON type is checked here.
    Blob,
    Timestamp,
}

/// What is wrong with one member of a request. `path` is AWS's: `a.b` for a nested member,
/// `list.3.member` for the third element of a list.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// The JSON value is not of the member's type (AWS: a serialization error).
    WrongType { path: String, expected: &'static str, found: &'static str },
    /// A required member is absent or null.
    Missing { path: String },
    /// The value breaks a constraint.
    Constraint { path: String, value: Value, rule: Rule },
}

/// A constraint, rendered in the words AWS's validation messages use.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    MinLength(i64),
    MaxLength(i64),
    MinValue(f64),
    MaxValue(f64),
    Pattern(String),
    Enum(Vec<String>),
    /// An element of a list of scalars breaks its own rule.
    ListMember(Box<Rule>),
    MapKey(Box<Rule>),
    MapValue(Box<Rule>),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::MinLength(n) => write!(f, "Member must have length greater than or equal to {n}"),
            Rule::MaxLength(n) => write!(f, "Member must have length less than or equal to {n}"),
            Rule::MinValue(n) => write!(f, "Member must have value greater than or equal to {n}"),
            Rule::MaxValue(n) => write!(f, "Member must have value less than or equal to {n}"),
            Rule::Pattern(p) => write!(f, "Member must satisfy regular expression pattern: {p}"),
            Rule::Enum(values) => write!(f, "Member must satisfy enum value set: [{}]", values.join(", ")),
            Rule::ListMember(inner) => write!(f, "Member must satisfy constraint: [{inner}]"),
            Rule::MapKey(inner) => write!(f, "Map keys must satisfy constraint: [{inner}]"),
            Rule::MapValue(inner) => write!(f, "Map value must satisfy constraint: [{inner}]"),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "structure",
    }
}

impl Model {
    /// An API's embedded model, loaded once into `cell`. A model that does not load is logged
    /// and requests go unvalidated (the handlers' typed inputs still refuse what they cannot read).
    pub fn embedded(cell: &'static std::sync::OnceLock<Option<Model>>, text: &str, api: &str) -> Option<&'static Model> {
        cell.get_or_init(|| match Model::from_json(text) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, api, "the constraint model does not load; requests are not validated");
                None
            }
        })
        .as_ref()
    }

    /// Reads a model file; every pattern must compile.
    pub fn from_json(text: &str) -> Result<Model, String> {
        let file: ModelFile = serde_json::from_str(text).map_err(|e| format!("constraint model: {e}"))?;
        let mut patterns = HashMap::new();
        for shape in file.shapes.values() {
            if let Shape::String { pattern: Some(p), .. } = shape {
                let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("constraint model: pattern {p:?}: {e}"))?;
                patterns.insert(p.clone(), re);
            }
        }
        Ok(Model { operations: file.operations, shapes: file.shapes, patterns })
    }

    /// The violations of `input` as the request of `operation`, in member order; none for an
    /// operation the model does not know.
    pub fn check(&self, operation: &str, input: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(shape) = self.operations.get(operation) {
            self.walk(shape, input, "", &mut out);
        }
        out
    }

    fn walk(&self, shape_name: &str, v: &Value, path: &str, out: &mut Vec<Violation>) {
        let Some(shape) = self.shapes.get(shape_name) else { return };
        if v.is_null() {
            return;
        }
        let wrong = |expected: &'static str, out: &mut Vec<Violation>| {
            out.push(Violation::WrongType { path: path.to_string(), expected, found: json_kind(v) })
        };
        let broken =
            |rule: Rule, out: &mut Vec<Violation>| out.push(Violation::Constraint { path: path.to_string(), value: v.clone(), rule });
        match shape {
            Shape::Structure { required, members } => {
                let Some(obj) = v.as_object() else { return wrong("structure", out) };
                for name in required {
                    if obj.get(name).is_none_or(Value::is_null) {
                        out.push(Violation::Missing { path: join(path, name) });
                    }
                }
                for (name, member_shape) in members {
                    if let Some(value) = obj.get(name) {
                        self.walk(member_shape, value, &join(path, name), out);
                    }
                }
            }
            Shape::List { member, min, max } => {
                let Some(items) = v.as_array() else { return wrong("list", out) };
                if let Some(rule) = size_rule(items.len(), *min, *max) {
                    broken(rule, out);
                }
                for (i, item) in items.iter().enumerate() {
                    match self.scalar_rule(member, item) {
                        Some(Ok(rule)) => broken(Rule::ListMember(Box::new(rule)), out),
                        Some(Err(())) => {}
                        None => self.walk(member, item, &format!("{path}.{}.member", i + 1), out),
                    }
                }
            }
            Shape::Map { key, value, min, max } => {
                let Some(obj) = v.as_object() else { return wrong("map", out) };
                if let Some(rule) = size_rule(obj.len(), *min, *max) {
                    broken(rule, out);
                }
                for (k, item) in obj {
                    if let Some(Ok(rule)) = self.scalar_rule(key, &Value::String(k.clone())) {
                        broken(Rule::MapKey(Box::new(rule)), out);
                    }
                    match self.scalar_rule(value, item) {
                        Some(Ok(rule)) => broken(Rule::MapValue(Box::new(rule)), out),
                        Some(Err(())) => {}
                        None => self.walk(value, item, &format!("{path}.{k}"), out),
                    }
                }
            }
            Shape::String { .. } => match v.as_str() {
                Some(_) => {
                    if let Some(Ok(rule)) = self.scalar_rule(shape_name, v) {
                        broken(rule, out);
                    }
                }
                None => wrong("string", out),
            },
            Shape::Integer { .. } | Shape::Long { .. } => {
                if !(v.is_i64() || v.is_u64()) {
                    return wrong("integer", out);
                }
                if let Some(Ok(rule)) = self.scalar_rule(shape_name, v) {
                    broken(rule, out);
                }
            }
            Shape::Float { .. } | Shape::Double { .. } => {
                if !v.is_number() {
                    return wrong("number", out);
                }
                if let Some(Ok(rule)) = self.scalar_rule(shape_name, v) {
                    broken(rule, out);
                }
            }
            Shape::Boolean if !v.is_boolean() => wrong("boolean", out),
            Shape::Blob if !v.is_string() => wrong("blob", out),
            Shape::Timestamp if !(v.is_number() || v.is_string()) => wrong("timestamp", out),
            Shape::Boolean | Shape::Blob | Shape::Timestamp => {}
        }
    }

    /// For a scalar shape: `Some(Ok(rule))` when `v` breaks a rule, `Some(Err(()))` when it keeps
    /// them all or is of the wrong JSON type (reported by the walk), `None` when the shape is
    /// not a scalar.
    fn scalar_rule(&self, shape_name: &str, v: &Value) -> Option<Result<Rule, ()>> {
        let broken = match self.shapes.get(shape_name)? {
            Shape::String { min, max, pattern, values } => {
                let Some(s) = v.as_str() else { return Some(Err(())) };
                self.string_rule(s, *min, *max, pattern.as_deref(), values.as_deref())
            }
            Shape::Integer { min, max } | Shape::Long { min, max } => range_rule(v.as_f64(), min.map(|m| m as f64), max.map(|m| m as f64)),
            Shape::Float { min, max } | Shape::Double { min, max } => range_rule(v.as_f64(), *min, *max),
            Shape::Boolean | Shape::Blob | Shape::Timestamp => None,
            Shape::Structure { .. } | Shape::List { .. } | Shape::Map { .. } => return None,
        };
        Some(broken.ok_or(()))
    }

    fn string_rule(&self, s: &str, min: Option<i64>, max: Option<i64>, pattern: Option<&str>, values: Option<&[String]>) -> Option<Rule> {
        if let Some(rule) = size_rule(s.chars().count(), min, max) {
            return Some(rule);
        }
        if let Some(p) = pattern {
            if self.patterns.get(p).is_some_and(|re| !re.is_match(s)) {
                return Some(Rule::Pattern(p.to_string()));
            }
        }
        match values {
            Some(values) if !values.iter().any(|x| x == s) => Some(Rule::Enum(values.to_vec())),
            _ => None,
        }
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn size_rule(len: usize, min: Option<i64>, max: Option<i64>) -> Option<Rule> {
    let len = len as i64;
    match (min, max) {
        (Some(m), _) if len < m => Some(Rule::MinLength(m)),
        (_, Some(m)) if len > m => Some(Rule::MaxLength(m)),
        _ => None,
    }
}

fn range_rule(v: Option<f64>, min: Option<f64>, max: Option<f64>) -> Option<Rule> {
    let v = v?;
    match (min, max) {
        (Some(m), _) if v < m => Some(Rule::MinValue(m)),
        (_, Some(m)) if v > m => Some(Rule::MaxValue(m)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MODEL: &str = r#"{"operations":{"Op":"OpRequest"},"shapes":{
        "OpRequest":{"type":"structure","required":["name","id"],"members":{"name":"Name","id":"Id","max":"Max","kind":"Kind","ids":"Ids","names":"Names","tags":"Tags","on":"Flag"}},
        "Name":{"type":"string","min":2,"max":8,"pattern":"[a-z]+(\\/[a-z]+)*"},
        "Max":{"type":"integer","min":1,"max":1000},
        "Kind":{"type":"string","enum":["A","B"]},
        "Id":{"type":"structure","required":["digest"],"members":{"digest":"Name","tag":"Name"}},
        "Ids":{"type":"list","min":1,"max":2,"member":"Id"},
        "Names":{"type":"list","member":"Name"},
        "Tags":{"type":"map","key":"Name","value":"Name"},
        "Flag":{"type":"boolean"}}}"#;

    fn model() -> Model {
        Model::from_json(MODEL).expect("model")
    }

    fn constraint(path: &str, value: Value, rule: Rule) -> Violation {
        Violation::Constraint { path: path.into(), value, rule }
    }

    #[test]
    fn a_valid_request_has_no_violations_and_unknown_operations_are_not_checked() {
        let m = model();
        let ok = json!({"name": "ab", "id": {"digest": "cd"}, "max": 1000, "kind": "B", "ids": [{"digest": "xy"}],
                        "names": ["ab/cd"], "tags": {"ab": "cd"}, "on": true, "unknown": 5});
        assert_eq!(m.check("Op", &ok), vec![]);
        assert_eq!(m.check("Other", &json!({"name": 1})), vec![]);
    }

    #[test]
    fn missing_and_null_required_members() {
        let got = model().check("Op", &json!({"name": null, "ids": [{"tag": "ab"}]}));
        assert_eq!(
            got,
            vec![
                Violation::Missing { path: "name".into() },
                Violation::Missing { path: "id".into() },
                Violation::Missing { path: "ids.1.member.digest".into() },
            ]
        );
    }

    #[test]
    fn constraints_in_aws_words() {
        let m = model();
        let base = || json!({"name": "ab", "id": {"digest": "cd"}});
        let one = |k: &str, v: Value| {
            let mut req = base();
            req[k] = v;
            m.check("Op", &req)
        };
        assert_eq!(one("name", json!("abcdefghi")), vec![constraint("name", json!("abcdefghi"), Rule::MaxLength(8))]);
        assert_eq!(one("name", json!("a")), vec![constraint("name", json!("a"), Rule::MinLength(2))]);
        let bad = one("name", json!("AB"));
        assert_eq!(bad, vec![constraint("name", json!("AB"), Rule::Pattern("[a-z]+(\\/[a-z]+)*".into()))]);
        assert_eq!(one("name", json!("ab/cd")), vec![], "patterns allow escaped slashes");
        assert_eq!(one("name", json!("xab/")), vec![constraint("name", json!("xab/"), Rule::Pattern("[a-z]+(\\/[a-z]+)*".into()))]);
        let rule = |r: &Rule| r.to_string();
        assert_eq!(rule(&Rule::MaxValue(1000.0)), "Member must have value less than or equal to 1000");
        assert_eq!(one("max", json!(0)), vec![constraint("max", json!(0), Rule::MinValue(1.0))]);
        assert_eq!(one("max", json!(1001)), vec![constraint("max", json!(1001), Rule::MaxValue(1000.0))]);
        let kind = one("kind", json!("C"));
        assert_eq!(kind, vec![constraint("kind", json!("C"), Rule::Enum(vec!["A".into(), "B".into()]))]);
        assert_eq!(Rule::Enum(vec!["A".into(), "B".into()]).to_string(), "Member must satisfy enum value set: [A, B]");
        let ids = json!([{"digest": "ab"}, {"digest": "ab"}, {"digest": "ab"}]);
        assert_eq!(one("ids", ids.clone()), vec![constraint("ids", ids, Rule::MaxLength(2))]);
        assert_eq!(one("ids", json!([{"digest": "A"}]))[0], constraint("ids.1.member.digest", json!("A"), Rule::MinLength(2)));
        let names = one("names", json!(["ab", "Q"]));
        assert_eq!(names, vec![constraint("names", json!(["ab", "Q"]), Rule::ListMember(Box::new(Rule::MinLength(2))))]);
        assert_eq!(
            names.first().map(|v| match v {
                Violation::Constraint { rule, .. } => rule.to_string(),
                _ => String::new(),
            }),
            Some("Member must satisfy constraint: [Member must have length greater than or equal to 2]".into())
        );
        let tags = one("tags", json!({"ab": "Q"}));
        assert_eq!(tags, vec![constraint("tags", json!({"ab": "Q"}), Rule::MapValue(Box::new(Rule::MinLength(2))))]);
    }

    #[test]
    fn wrong_json_types_are_reported_as_such() {
        let got = model().check("Op", &json!({"name": 5, "id": "x", "max": 1.5, "on": "yes", "names": {}}));
        let paths: Vec<(&str, &str)> = got
            .iter()
            .map(|v| match v {
                Violation::WrongType { path, expected, .. } => (path.as_str(), *expected),
                _ => ("", ""),
            })
            .collect();
        assert_eq!(paths, vec![("id", "structure"), ("max", "integer"), ("name", "string"), ("names", "list"), ("on", "boolean")]);
    }
}
