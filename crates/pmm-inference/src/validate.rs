//! Request validation the way OpenAI does it: the same required fields, ranges, messages and
//! roles, answered with a 400 naming the parameter (`messages[1].role`) and an OpenAI code
//! (`missing_required_parameter`, `invalid_type`, `invalid_value`, `empty_array`,
//! `integer_below_min_value`, `integer_above_max_value`, `decimal_below_min_value`,
//! `decimal_above_max_value`). Nothing reaches an upstream before this passes.

use serde_json::{Map, Value};

use crate::backend::{self, Route};
use crate::error::ProxyError;

/// Roles OpenAI's chat route accepts.
const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Largest `n` OpenAI accepts.
const MAX_N: i64 = 128;

/// A validated generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The body as sent.
    pub body: Map<String, Value>,
    /// Whether the client asked for SSE.
    pub stream: bool,
    /// The requested model id (a name or an alias).
    pub model: String,
    /// Whether the request carries tools (a non-empty `tools` array).
    pub tools: bool,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid_type(param: &str, expected: &str, got: &Value) -> ProxyError {
    ProxyError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        param,
        "invalid_type",
    )
}

fn missing(param: &str) -> ProxyError {
    ProxyError::invalid(
        format!("Missing required parameter: '{param}'."),
        param,
        "missing_required_parameter",
    )
}

/// A field present with a non-null value.
fn present<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn check_integer(
    body: &Map<String, Value>,
    key: &str,
    min: i64,
    max: Option<i64>,
) -> Result<(), ProxyError> {
    let Some(v) = present(body, key) else {
        return Ok(());
    };
    let n = v
        .as_i64()
        .or_else(|| v.as_u64().map(|_| i64::MAX))
        .ok_or_else(|| invalid_type(key, "an integer", v))?;
    if n < min {
        return Err(ProxyError::invalid(
            format!(
                "Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {n} instead."
            ),
            key,
            "integer_below_min_value",
        ));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(ProxyError::invalid(
            format!(
                "Invalid '{key}': integer above maximum value. Expected a value <= {max}, but got {n} instead."
            ),
            key,
            "integer_above_max_value",
        ));
    }
    Ok(())
}

fn check_decimal(body: &Map<String, Value>, key: &str, max: f64) -> Result<(), ProxyError> {
    let Some(v) = present(body, key) else {
        return Ok(());
    };
    let x = v.as_f64().ok_or_else(|| invalid_type(key, "a number", v))?;
    if x < 0.0 {
        return Err(ProxyError::invalid(
            format!(
                "Invalid '{key}': decimal below minimum value. Expected a value >= 0, but got {x} instead."
            ),
            key,
            "decimal_below_min_value",
        ));
    }
    if x > max {
        return Err(ProxyError::invalid(
            format!(
                "Invalid '{key}': decimal above maximum value. Expected a value <= {max}, but got {x} instead."
            ),
            key,
            "decimal_above_max_value",
        ));
    }
    Ok(())
}

fn check_messages(body: &Map<String, Value>) -> Result<(), ProxyError> {
    let messages = present(body, "messages").ok_or_else(|| missing("messages"))?;
    let list = messages
        .as_array()
        .ok_or_else(|| invalid_type("messages", "an array", messages))?;
    if list.is_empty() {
        return Err(ProxyError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let m = m
            .as_object()
            .ok_or_else(|| invalid_type(&param, "an object", m))?;
        let role_param = format!("{param}.role");
        let role = present(m, "role").ok_or_else(|| missing(&role_param))?;
        let role = role
            .as_str()
            .ok_or_else(|| invalid_type(&role_param, "a string", role))?;
        if !ROLES.contains(&role) {
            return Err(ProxyError::invalid(
                format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', and 'function'."
                ),
                &role_param,
                "invalid_value",
            ));
        }
        if let Some(c) = present(m, "content")
            && !c.is_string()
            && !c.is_array()
        {
            return Err(invalid_type(
                &format!("{param}.content"),
                "a string or an array",
                c,
            ));
        }
        if present(m, "content").is_none() && role != "assistant" {
            return Err(missing(&format!("{param}.content")));
        }
        if role == "tool" && present(m, "tool_call_id").is_none() {
            return Err(missing(&format!("{param}.tool_call_id")));
        }
    }
    Ok(())
}

/// Checks `tools`; returns whether the request carries any.
fn check_tools(body: &Map<String, Value>) -> Result<bool, ProxyError> {
    let Some(tools) = present(body, "tools") else {
        if present(body, "tool_choice").is_some() {
            return Err(ProxyError::invalid(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
                "invalid_value",
            ));
        }
        return Ok(false);
    };
    let list = tools
        .as_array()
        .ok_or_else(|| invalid_type("tools", "an array", tools))?;
    if list.is_empty() {
        return Err(ProxyError::invalid(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "tools",
            "empty_array",
        ));
    }
    for (i, t) in list.iter().enumerate() {
        let param = format!("tools[{i}]");
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ProxyError::invalid(
                format!("Invalid value for '{param}.type': expected 'function'."),
                &format!("{param}.type"),
                "invalid_value",
            ));
        }
        if !t
            .get("function")
            .and_then(|f| f.get("name"))
            .is_some_and(Value::is_string)
        {
            return Err(missing(&format!("{param}.function.name")));
        }
    }
    Ok(true)
}

/// Parses and checks a front request.
pub fn parse_request(route: Route, raw: &[u8]) -> Result<Parsed, ProxyError> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| ProxyError::BadRequest {
        message: format!("We could not parse the JSON body of your request: {e}"),
        param: None,
        code: None,
    })?;
    let Value::Object(body) = value else {
        return Err(ProxyError::BadRequest {
            message: "The body of your request must be a JSON object.".into(),
            param: None,
            code: None,
        });
    };
    let model = match present(&body, "model") {
        None => {
            return Err(ProxyError::BadRequest {
                message: "you must provide a model parameter".into(),
                param: Some("model".into()),
                code: Some("missing_required_parameter"),
            });
        }
        Some(Value::String(m)) => m.clone(),
        Some(other) => return Err(invalid_type("model", "a string", other)),
    };
    let tools = match route {
        Route::Chat => {
            check_messages(&body)?;
            check_tools(&body)?
        }
        Route::Completions => {
            let prompt = present(&body, "prompt").ok_or_else(|| missing("prompt"))?;
            if !prompt.is_string() && !prompt.is_array() {
                return Err(invalid_type("prompt", "a string or an array", prompt));
            }
            if let Some(key) = ["tools", "tool_choice"]
                .into_iter()
                .find(|k| body.contains_key(*k))
            {
                return Err(ProxyError::invalid(
                    format!(
                        "Unrecognized request argument supplied: {key} (tools are served on /v1/chat/completions)"
                    ),
                    key,
                    "unknown_parameter",
                ));
            }
            false
        }
    };
    let stream = match present(&body, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid_type("stream", "a boolean", other)),
    };
    check_integer(&body, "n", 1, Some(MAX_N))?;
    check_integer(&body, "max_tokens", 1, None)?;
    check_integer(&body, "max_completion_tokens", 1, None)?;
    check_decimal(&body, "temperature", 2.0)?;
    check_decimal(&body, "top_p", 1.0)?;
    backend::structured_output(&body)?;
    Ok(Parsed {
        body,
        stream,
        model,
        tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(route: Route, v: Value) -> (String, Option<String>, Option<&'static str>) {
        match parse_request(route, v.to_string().as_bytes()) {
            Err(ProxyError::BadRequest {
                message,
                param,
                code,
            }) => (message, param, code),
            other => panic!("expected a 400 for {v}, got {other:?}"),
        }
    }

    fn chat(extra: Value) -> Value {
        let mut base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    }

    #[test]
    fn openai_checks_name_param_and_code() {
        let cases: [(Value, &str, &str); 9] = [
            (chat(json!({"messages": []})), "messages", "empty_array"),
            (
                chat(json!({"messages": [{"role": "bot", "content": "x"}]})),
                "messages[0].role",
                "invalid_value",
            ),
            (
                chat(json!({"messages": [{"content": "x"}]})),
                "messages[0].role",
                "missing_required_parameter",
            ),
            (chat(json!({"n": 0})), "n", "integer_below_min_value"),
            (chat(json!({"n": 129})), "n", "integer_above_max_value"),
            (chat(json!({"n": "2"})), "n", "invalid_type"),
            (
                chat(json!({"max_tokens": 0})),
                "max_tokens",
                "integer_below_min_value",
            ),
            (
                chat(json!({"temperature": 2.5})),
                "temperature",
                "decimal_above_max_value",
            ),
            (
                chat(json!({"tool_choice": "auto"})),
                "tool_choice",
                "invalid_value",
            ),
        ];
        for (body, param, code) in cases {
            let (message, p, c) = err(Route::Chat, body.clone());
            assert_eq!(p.as_deref(), Some(param), "{body}: {message}");
            assert_eq!(c, Some(code), "{body}: {message}");
        }
        let (m, p, _) = err(
            Route::Chat,
            json!({"messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(p.as_deref(), Some("model"), "{m}");
        let (_, p, _) = err(
            Route::Completions,
            json!({"model": "m", "prompt": "x", "tools": []}),
        );
        assert_eq!(p.as_deref(), Some("tools"));
    }

    #[test]
    fn valid_requests_pass() {
        let p = parse_request(
            Route::Chat,
            chat(json!({"n": 1, "max_tokens": 5, "stream": true,
                "tools": [{"type": "function", "function": {"name": "f"}}]}))
            .to_string()
            .as_bytes(),
        )
        .expect("valid");
        assert!(p.stream && p.tools);
        assert_eq!(p.model, "m");
    }
}
