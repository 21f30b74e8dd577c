use serde_json::json;

use super::*;

const POOL: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

fn err(tool: &str, params: Value) -> (String, String) {
    match check(tool, &params) {
        Err(ToolError::InvalidField { field, message }) => (field, message),
        other => panic!("{tool} {params}: expected invalid_params, got {other:?}"),
    }
}

/// Keywords [`Checker`] enforces or that carry no constraint; any other keyword in an
/// advertised input schema would be a rule clients see but the hub does not check.
const KNOWN: [&str; 26] = [
    "$schema",
    "$ref",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "type",
    "const",
    "enum",
    "oneOf",
    "anyOf",
    "allOf",
    "properties",
    "required",
    "additionalProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "items",
    "minItems",
    "maxItems",
];

fn keywords(v: &Value, in_properties: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if !in_properties {
                    out.push(k.clone());
                }
                // Names under `properties` / `$defs` are field and type names, not keywords.
                keywords(x, k == "properties" || k == "$defs", out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keywords(x, false, out)),
        _ => {}
    }
}

#[test]
fn every_input_schema_keyword_is_enforced() {
    for (name, _) in TOOLS {
        let s = schemas(name).expect("schemas");
        let mut found = Vec::new();
        keywords(&Value::Object(s.input.as_ref().clone()), false, &mut found);
        for k in found {
            assert!(KNOWN.contains(&k.as_str()), "{name}: unchecked keyword {k}");
        }
        assert_eq!(
            s.input.get("additionalProperties"),
            Some(&json!(false)),
            "{name}"
        );
    }
}

#[test]
fn every_advertised_pattern_compiles() {
    fn patterns(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(p)) = m.get("pattern") {
                    out.push(p.clone());
                }
                m.values().for_each(|x| patterns(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| patterns(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    for (name, _) in TOOLS {
        patterns(
            &Value::Object(schemas(name).expect("schemas").input.as_ref().clone()),
            &mut all,
        );
    }
    assert!(all.len() > 10);
    for p in all {
        assert!(CATALOG.patterns.contains_key(&p), "{p}");
    }
}

#[test]
fn schemas_are_portable() {
    fn formats(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(f)) = m.get("format") {
                    out.push(f.clone());
                }
                m.values().for_each(|x| formats(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| formats(x, out)),
            _ => {}
        }
    }
    for (name, _) in TOOLS {
        let s = schemas(name).expect("schemas");
        for schema in [&s.input, &s.output] {
            let mut found = Vec::new();
            formats(&Value::Object(schema.as_ref().clone()), &mut found);
            assert!(
                found.iter().all(|f| STANDARD_FORMATS.contains(&f.as_str())),
                "{name}: {found:?}"
            );
        }
    }
    // The bounds a format implied are kept as minimum / maximum.
    let p = portable(json!({"type": "integer", "format": "uint8", "minimum": 0}));
    assert_eq!(p, json!({"type": "integer", "minimum": 0, "maximum": 255}));
    let p = portable(json!({"type": "integer", "format": "uint64"}));
    assert_eq!(
        p,
        json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
    );
    let p = portable(json!({"type": ["number", "null"], "format": "double"}));
    assert_eq!(p, json!({"type": ["number", "null"]}));
    let write = schemas(ADD_LIQUIDITY).expect("schemas");
    assert_eq!(
        write.input["properties"]["deadline"]["maximum"],
        json!(u64::MAX),
        "{:?}",
        write.input["properties"]["deadline"]
    );
}

#[test]
fn lengths_patterns_and_checksums_are_enforced() {
    let long = "x".repeat(501);
    let (f, m) = err(PAUSE, json!({"pool": POOL, "reason": long}));
    assert_eq!(f, "reason");
    assert!(m.contains("at most 500"), "{m}");
    let (f, m) = err(PAUSE, json!({"pool": POOL, "reason": ""}));
    assert_eq!(f, "reason");
    assert!(m.contains("at least 1"), "{m}");
    check(PAUSE, &json!({"pool": POOL, "reason": "x".repeat(500)})).expect("500 is allowed");
    check(PAUSE, &json!({"pool": "*", "reason": "r"})).expect("global pause");
    let (f, m) = err(GET_POOL_STATE, json!({"pool": "0x1234"}));
    assert_eq!(f, "pool");
    assert!(m.contains("20-byte"), "{m}");
    // One character's case flipped: the checksum catches it.
    let bad = POOL.replace('F', "f");
    assert_ne!(bad, POOL);
    let (f, m) = err(GET_POOL_STATE, json!({"pool": bad}));
    assert_eq!(f, "pool");
    assert!(m.contains("EIP-55"), "{m}");
    check(GET_POOL_STATE, &json!({"pool": POOL})).expect("checksummed");
    check(GET_POOL_STATE, &json!({"pool": POOL.to_lowercase()})).expect("all lowercase");
    let (f, _) = err(RESUME, json!({"pool": bad}));
    assert_eq!(f, "pool");
    let (f, m) = err(
        SIMULATE,
        json!({"action": {"action": "add_liquidity", "pool": bad, "base_amount": "1",
            "quote_amount": "1", "min_shares": "0", "reason": "r"}}),
    );
    assert_eq!(f, "action.pool");
    assert!(m.contains("EIP-55"), "{m}");
    let (f, m) = err(
        QUOTE_ADD,
        json!({"pool": POOL, "base_amount": "-5", "quote_amount": "1"}),
    );
    assert_eq!(f, "base_amount");
    assert!(m.contains("negative"), "{m}");
    let (f, _) = err(
        ADD_LIQUIDITY,
        json!({"pool": POOL, "base_amount": "1", "quote_amount": "1", "min_shares": "0",
            "idempotency_key": "k".repeat(129)}),
    );
    assert_eq!(f, "idempotency_key");
}

#[test]
fn shapes_ranges_and_unknown_fields_are_enforced() {
    let (f, m) = err(GET_POOL_STATE, json!([POOL]));
    assert_eq!(f, "params");
    assert!(m.contains("expected object, got array"), "{m}");
    let (f, m) = err(GET_POOL_STATE, json!({"pool": POOL, "extra": 1}));
    assert_eq!(f, "extra");
    assert!(m.contains("unknown field `extra`"), "{m}");
    let (f, m) = err(GET_POOL_STATE, Value::Null);
    assert_eq!(f, "pool");
    assert!(m.contains("missing field `pool`"), "{m}");
    let (f, m) = err(GET_POOL_STATE, json!({"pool": 5}));
    assert_eq!(f, "pool");
    assert!(m.contains("expected string, got integer"), "{m}");
    let ok = json!({"pool": POOL, "base_amount": "1", "quote_amount": "1", "min_shares": "0"});
    let mut neg = ok.clone();
    neg["deadline"] = json!(-1);
    let (f, m) = err(ADD_LIQUIDITY, neg);
    assert_eq!(f, "deadline");
    assert!(m.contains(">= 0"), "{m}");
    let mut frac = ok.clone();
    frac["deadline"] = json!(1.5);
    let (f, _) = err(ADD_LIQUIDITY, frac);
    assert_eq!(f, "deadline");
    let mut huge = ok.clone();
    huge["deadline"] = json!(1e30);
    let (f, m) = err(ADD_LIQUIDITY, huge);
    assert_eq!(f, "deadline");
    assert!(m.contains("<="), "{m}");
    check(ADD_LIQUIDITY, &ok).expect("valid");
    let (f, m) = err(
        RISK_CHECK,
        json!({"pool": POOL, "action": {"action": "swap", "reason": "r"}}),
    );
    assert_eq!(f, "action.action");
    assert!(m.contains("hold"), "{m}");
    let (f, m) = err(
        RISK_CHECK,
        json!({"pool": POOL, "action": {"action": "hold", "reason": "r", "x": 1}}),
    );
    assert_eq!(f, "action.x");
    assert!(m.contains("unknown field"), "{m}");
    let (f, _) = err(
        RISK_CHECK,
        json!({"pool": POOL, "action": {"action": "hold", "reason": "r".repeat(501)}}),
    );
    assert_eq!(f, "action.reason");
    check(RISK_CHECK, &json!({"pool": POOL, "action": null})).expect("absent action");
    check(
        RISK_CHECK,
        &json!({"pool": POOL, "action": {"action": "hold", "reason": "r"}}),
    )
    .expect("hold");
    assert!(matches!(
        check("dodo.nope", &json!({})),
        Err(ToolError::UnknownTool(_))
    ));
}

#[test]
fn rejected_input_is_stored_within_bounds() {
    let big = json!({
        "reason": "x".repeat(1 << 20),
        "many": (0..1000).collect::<Vec<_>>(),
        "deep": [[[[[[[[[[1]]]]]]]]]],
    });
    let b = bounded(&big);
    assert_eq!(
        b["reason"].as_str().map(|s| s.len()),
        Some(STORED_STRING_MAX)
    );
    assert_eq!(b["many"].as_array().map(Vec::len), Some(STORED_ENTRIES_MAX));
    assert!(b.to_string().len() < 4096, "{b}");
    let small = json!({"pool": POOL, "reason": "r"});
    assert_eq!(bounded(&small), small);
}
