//! One input check for both transports: every tool's arguments are held to the JSON Schema
//! its `tools/list` entry advertises (types, required and unknown fields, lengths, patterns,
//! ranges, enums), plus the EIP-55 checksum of mixed-case addresses, before they are decoded.
//! `/mcp/call` and `/mcp` both reach it through [`crate::hub::Hub::dispatch`], so the same bad
//! input gets the same `{code, message, field}` on either.
//!
//! The schemas are schemars' output made portable: schemars' `uint8` / `uint64` / `double`
//! formats are unknown to other validators (the TypeScript SDK warns on each), so they become
//! `minimum` / `maximum` bounds that every validator reads.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use pmm_chain::InterfaceReport;
use pmm_core::policy::RiskReport;
use pmm_core::schema::PoolState;
use regex::Regex;
use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Map, Value};

use crate::error::ToolError;
use crate::tools::*;

/// An address pattern: a string matching it that mixes cases must carry its EIP-55 checksum.
pub(crate) const ADDRESS_HEX: &str = "0x[0-9a-fA-F]{40}";

/// The advertised schemas of one tool.
#[derive(Debug)]
pub struct ToolSchemas {
    /// `inputSchema`, which [`check`] enforces.
    pub input: Arc<JsonObject>,
    /// `outputSchema`, which every success result conforms to.
    pub output: Arc<JsonObject>,
}

struct Catalog {
    tools: HashMap<&'static str, ToolSchemas>,
    patterns: HashMap<String, Regex>,
}

fn entry<I: JsonSchema + 'static, O: JsonSchema + 'static>() -> ToolSchemas {
    // Every parameter type is a struct, which schemars renders with root type object.
    let input = schema_for_input::<I>().unwrap_or_else(|_| Arc::new(Map::new()));
    ToolSchemas {
        input: Arc::new(portable_object(&input)),
        output: Arc::new(portable_object(&schema_for_output::<O>())),
    }
}

fn portable_object(o: &JsonObject) -> JsonObject {
    match portable(Value::Object(o.clone())) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let tools: HashMap<&'static str, ToolSchemas> = [
        (GET_POOL_STATE, entry::<PoolParams, PoolState>()),
        (IDENTIFY, entry::<PoolParams, InterfaceReport>()),
        (QUOTE_ADD, entry::<QuoteAddParams, AddLiquidityQuote>()),
        (RISK_CHECK, entry::<RiskCheckParams, RiskReport>()),
        (SIMULATE, entry::<SimulateParams, SimulationResult>()),
        (PAUSE, entry::<PauseParams, BreakerResult>()),
        (RESUME, entry::<ResumeParams, BreakerResult>()),
        (ADD_LIQUIDITY, entry::<AddLiquidityParams, WriteResult>()),
        (
            REMOVE_LIQUIDITY,
            entry::<RemoveLiquidityParams, WriteResult>(),
        ),
        (RESET_POOL, entry::<ResetPoolParams, WriteResult>()),
    ]
    .into_iter()
    .collect();
    let mut patterns = HashMap::new();
    for s in tools.values() {
        collect_patterns(&Value::Object(s.input.as_ref().clone()), &mut patterns);
    }
    Catalog { tools, patterns }
});

fn collect_patterns(v: &Value, out: &mut HashMap<String, Regex>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(p)) = m.get("pattern")
                && let Ok(re) = Regex::new(p)
            {
                out.insert(p.clone(), re);
            }
            m.values().for_each(|x| collect_patterns(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_patterns(x, out)),
        _ => {}
    }
}

/// The schemas `tool` advertises; `None` for an unknown tool.
pub fn schemas(tool: &str) -> Option<&'static ToolSchemas> {
    CATALOG.tools.get(tool)
}

/// Formats every JSON Schema validator knows (draft 2020-12); others are dropped.
const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// The integer range schemars' integer formats stand for.
fn format_range(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" | "uint" => (0, u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" | "int" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

fn bound(v: i128) -> Value {
    u64::try_from(v)
        .map(Value::from)
        .or_else(|_| i64::try_from(v).map(Value::from))
        .unwrap_or(Value::Null)
}

/// `schema` with non-standard formats replaced by the bounds they imply.
pub fn portable(schema: Value) -> Value {
    match schema {
        Value::Object(mut m) => {
            if let Some(Value::String(f)) = m.get("format").cloned()
                && !STANDARD_FORMATS.contains(&f.as_str())
            {
                m.remove("format");
                if let Some((lo, hi)) = format_range(&f) {
                    // A bound schemars already wrote (e.g. `minimum: 0`) is at least as tight.
                    m.entry("minimum").or_insert_with(|| bound(lo));
                    m.entry("maximum").or_insert_with(|| bound(hi));
                }
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, portable(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(portable).collect()),
        other => other,
    }
}

/// Longest string kept from rejected input: the longest any input schema allows.
pub const STORED_STRING_MAX: usize = 500;
/// Entries kept per object or array of rejected input.
pub const STORED_ENTRIES_MAX: usize = 32;
/// Nesting kept of rejected input.
pub const STORED_DEPTH_MAX: usize = 6;

/// What the `tool_calls` row keeps of input that was rejected: strings, containers and
/// nesting cut to the bounds above, so a caller cannot store megabytes by sending them.
pub fn bounded(v: &Value) -> Value {
    fn cut(v: &Value, depth: usize) -> Value {
        match v {
            Value::String(s) if s.chars().count() > STORED_STRING_MAX => {
                Value::String(s.chars().take(STORED_STRING_MAX).collect())
            }
            Value::Array(a) if depth >= STORED_DEPTH_MAX => {
                Value::from(format!("[{} items]", a.len()))
            }
            Value::Object(o) if depth >= STORED_DEPTH_MAX => {
                Value::from(format!("{{{} fields}}", o.len()))
            }
            Value::Array(a) => Value::Array(
                a.iter()
                    .take(STORED_ENTRIES_MAX)
                    .map(|x| cut(x, depth + 1))
                    .collect(),
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .take(STORED_ENTRIES_MAX)
                    .map(|(k, x)| (k.chars().take(64).collect(), cut(x, depth + 1)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    cut(v, 0)
}

/// Checks `params` (`null` counts as `{}`) against `tool`'s input schema.
pub fn check(tool: &str, params: &Value) -> Result<(), ToolError> {
    let Some(s) = schemas(tool) else {
        return Err(ToolError::UnknownTool(tool.chars().take(128).collect()));
    };
    let empty = Value::Object(Map::new());
    let params = if params.is_null() { &empty } else { params };
    let root = Value::Object(s.input.as_ref().clone());
    Checker {
        root: &root,
        patterns: &CATALOG.patterns,
    }
    .check(&root, params, "")
    .map_err(|(field, message)| ToolError::InvalidField {
        field: if field.is_empty() {
            "params".to_owned()
        } else {
            field
        },
        message,
    })
}

type Failure = (String, String);

struct Checker<'a> {
    root: &'a Value,
    patterns: &'a HashMap<String, Regex>,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let got = json_type(v);
    want == got
        || (want == "number" && got == "integer")
        || (want == "integer"
            && matches!(v, Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0)))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A value quoted in a message, cut short: the caller may have sent megabytes.
fn quote(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

impl Checker<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut s = schema;
        // `$ref`s are local (`#/$defs/Name`); a chain of them ends within a few steps.
        for _ in 0..16 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/")
                    .map(|p| p.split('/').try_fold(self.root, |node, seg| node.get(seg)))
                {
                    Some(Some(target)) => s = target,
                    _ => return &Value::Bool(false),
                },
                None => return s,
            }
        }
        &Value::Bool(false)
    }

    fn check(&self, schema: &Value, v: &Value, path: &str) -> Result<(), Failure> {
        let schema = self.resolve(schema);
        let fail = |msg: String| Err((path.to_owned(), msg));
        let m = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Object(m) => m,
            _ => return fail("no value is accepted here".into()),
        };
        if let Some(t) = m.get("type") {
            let wants: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !wants.iter().any(|w| type_matches(w, v)) {
                return fail(format!(
                    "expected {}, got {}",
                    wants.join(" or "),
                    json_type(v)
                ));
            }
        }
        if let Some(c) = m.get("const")
            && c != v
        {
            return fail(format!("must be {c}, got {}", quote(v)));
        }
        if let Some(Value::Array(options)) = m.get("enum")
            && !options.contains(v)
        {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            return fail(format!(
                "must be one of {}, got {}",
                list.join(", "),
                quote(v)
            ));
        }
        if let Some(Value::Array(branches)) = m.get("oneOf").or_else(|| m.get("anyOf")) {
            self.check_branches(branches, v, path)?;
        }
        if let Some(Value::Array(all)) = m.get("allOf") {
            for s in all {
                self.check(s, v, path)?;
            }
        }
        match v {
            Value::String(s) => self.check_string(m, s, path)?,
            Value::Number(_) => check_number(m, v, path)?,
            Value::Object(o) => self.check_object(m, o, path)?,
            Value::Array(a) => self.check_array(m, a, path)?,
            _ => {}
        }
        Ok(())
    }

    /// `oneOf` / `anyOf`. A tagged enum (every branch fixes one property with `const`) is
    /// checked against the branch its tag names, so the message is about that variant.
    fn check_branches(&self, branches: &[Value], v: &Value, path: &str) -> Result<(), Failure> {
        if let Some((tag, by_tag)) = self.tagged(branches) {
            let got = v.get(&tag);
            return match by_tag.iter().find(|(c, _)| Some(c) == got) {
                Some((_, b)) => self.check(b, v, path),
                None => {
                    let names: Vec<String> = by_tag.iter().map(|(c, _)| c.to_string()).collect();
                    Err((
                        child(path, &tag),
                        match got {
                            Some(g) => {
                                format!("must be one of {}, got {}", names.join(", "), quote(g))
                            }
                            None => format!("missing field `{tag}` (one of {})", names.join(", ")),
                        },
                    ))
                }
            };
        }
        let mut first = None;
        for b in branches {
            match self.check(b, v, path) {
                Ok(()) => return Ok(()),
                // `null` branches of an optional field explain nothing about a wrong value.
                Err(e) if self.resolve(b).get("type") != Some(&Value::from("null")) => {
                    first.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
        Err(first.unwrap_or_else(|| (path.to_owned(), "matches no allowed form".into())))
    }

    fn tagged<'s>(&'s self, branches: &'s [Value]) -> Option<(String, Vec<(Value, &'s Value)>)> {
        let mut tag: Option<String> = None;
        let mut out = Vec::new();
        for b in branches {
            let props = self.resolve(b).get("properties")?.as_object()?;
            let (k, c) = props
                .iter()
                .find_map(|(k, p)| self.resolve(p).get("const").map(|c| (k, c)))?;
            if tag.get_or_insert_with(|| k.clone()) != k {
                return None;
            }
            out.push((c.clone(), b));
        }
        tag.map(|t| (t, out))
    }

    fn check_string(&self, m: &Map<String, Value>, s: &str, path: &str) -> Result<(), Failure> {
        let fail = |msg: String| Err((path.to_owned(), msg));
        let len = s.chars().count();
        if let Some(min) = m.get("minLength").and_then(Value::as_u64)
            && (len as u64) < min
        {
            return fail(format!("must be at least {min} characters, got {len}"));
        }
        if let Some(max) = m.get("maxLength").and_then(Value::as_u64)
            && (len as u64) > max
        {
            return fail(format!("must be at most {max} characters, got {len}"));
        }
        if let Some(p) = m.get("pattern").and_then(Value::as_str) {
            // Every advertised pattern was compiled with the catalog; one that was not is
            // refused rather than skipped.
            let matched = self.patterns.get(p).is_some_and(|re| re.is_match(s));
            if !matched {
                return fail(pattern_message(p, s));
            }
            if p.contains(ADDRESS_HEX) && s.starts_with("0x") && s.len() == 42 {
                pmm_core::schema::addr::parse_address(s).map_err(|e| (path.to_owned(), e))?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        m: &Map<String, Value>,
        o: &Map<String, Value>,
        path: &str,
    ) -> Result<(), Failure> {
        let empty = Map::new();
        let props = m
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if let Some(Value::Array(req)) = m.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    return Err((child(path, r), format!("missing field `{r}`")));
                }
            }
        }
        for (k, v) in o {
            match props.get(k) {
                Some(s) => self.check(s, v, &child(path, k))?,
                None => match m.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let name: String = k.chars().take(64).collect();
                        let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        return Err((
                            child(path, &name),
                            format!(
                                "unknown field `{name}`, expected one of {}",
                                known.join(", ")
                            ),
                        ));
                    }
                    Some(s @ Value::Object(_)) => self.check(s, v, &child(path, k))?,
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn check_array(&self, m: &Map<String, Value>, a: &[Value], path: &str) -> Result<(), Failure> {
        if let Some(max) = m.get("maxItems").and_then(Value::as_u64)
            && a.len() as u64 > max
        {
            return Err((
                path.to_owned(),
                format!("at most {max} items, got {}", a.len()),
            ));
        }
        if let Some(min) = m.get("minItems").and_then(Value::as_u64)
            && (a.len() as u64) < min
        {
            return Err((
                path.to_owned(),
                format!("at least {min} items, got {}", a.len()),
            ));
        }
        if let Some(items) = m.get("items") {
            for (i, x) in a.iter().enumerate() {
                self.check(items, x, &format!("{path}[{i}]"))?;
            }
        }
        Ok(())
    }
}

fn check_number(m: &Map<String, Value>, v: &Value, path: &str) -> Result<(), Failure> {
    let fail = |msg: String| Err((path.to_owned(), msg));
    // Integers compare exactly when both sides fit u64 or i64; otherwise as f64.
    let cmp = |bound: &Value| -> Option<std::cmp::Ordering> {
        match (v.as_u64(), bound.as_u64(), v.as_i64(), bound.as_i64()) {
            (Some(a), Some(b), _, _) => Some(a.cmp(&b)),
            (_, _, Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => v.as_f64()?.partial_cmp(&bound.as_f64()?),
        }
    };
    use std::cmp::Ordering::{Greater, Less};
    if let Some(b) = m.get("minimum")
        && matches!(cmp(b), Some(Less) | None)
    {
        return fail(format!("must be >= {b}, got {}", quote(v)));
    }
    if let Some(b) = m.get("maximum")
        && matches!(cmp(b), Some(Greater) | None)
    {
        return fail(format!("must be <= {b}, got {}", quote(v)));
    }
    if let Some(b) = m.get("exclusiveMinimum")
        && !matches!(cmp(b), Some(Greater))
    {
        return fail(format!("must be > {b}, got {}", quote(v)));
    }
    if let Some(b) = m.get("exclusiveMaximum")
        && !matches!(cmp(b), Some(Less))
    {
        return fail(format!("must be < {b}, got {}", quote(v)));
    }
    Ok(())
}

/// What a pattern means, for the message; the pattern itself for any other.
fn pattern_message(p: &str, s: &str) -> String {
    let got: String = s.chars().take(64).collect();
    if p.contains(ADDRESS_HEX) {
        format!("{got:?} is not a 20-byte 0x-prefixed hex address (pattern {p})")
    } else if p == "^[0-9]+$" {
        format!(
            "{got:?} is not a decimal string of digits 0-9 (negative, fractional, hex and \
             exponent forms are refused)"
        )
    } else {
        format!("{got:?} does not match the pattern {p}")
    }
}

#[cfg(test)]
mod tests;
