//! `/docs`: the OpenAPI document as one server-rendered page (operations by tag, their
//! parameters, bodies, responses and examples, then the schemas), with no script and nothing
//! fetched from elsewhere.

use std::fmt::Write;

use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:auto;padding:1rem}\
code,pre{font:13px ui-monospace,monospace}pre{background:#f4f4f4;padding:.5rem;overflow:auto}\
section.op{border-top:1px solid #ccc;margin-top:1rem}.m{font-weight:bold;text-transform:uppercase}\
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}";

/// Text for HTML: every character that could open markup is escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn pretty(v: &Value) -> String {
    esc(&serde_json::to_string_pretty(v).unwrap_or_default())
}

/// A `$ref` as a link to its schema below, else the schema inline.
fn schema(s: &Value) -> String {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or(r);
            format!("<a href=\"#schema-{0}\">{0}</a>", esc(name))
        }
        None => format!("<pre>{}</pre>", pretty(s)),
    }
}

fn anchor(method: &str, path: &str) -> String {
    let mut a = format!("op-{method}");
    for c in path.chars() {
        a.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    a
}

pub fn render(doc: &Value) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let info = &doc["info"];
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} API</title>\
         <style>{STYLE}</style><h1>{} API {}</h1><p>{}</p>\
         <p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a> \
         (OpenAPI {}).</p>",
        esc(text(info, "title")),
        esc(text(info, "title")),
        esc(text(info, "version")),
        esc(text(info, "description")),
        esc(text(doc, "openapi")),
    );
    security_schemes(&mut h, doc);
    let ops = operations(doc);
    let tags: Vec<&Value> = doc["tags"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    h.push_str("<nav><h2>Operations</h2>");
    for tag in &tags {
        let name = text(tag, "name");
        let _ = write!(h, "<h3>{}</h3><ul>", esc(name));
        for (method, path, op) in ops.iter().filter(|(_, _, op)| has_tag(op, name)) {
            let _ = write!(
                h,
                "<li><a href=\"#{}\"><span class=\"m\">{}</span> {}</a> {}</li>",
                anchor(method, path),
                method,
                esc(path),
                esc(text(op, "summary")),
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</nav>");
    for (method, path, op) in &ops {
        operation(&mut h, method, path, op);
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, s) in schemas {
            let _ = write!(
                h,
                "<section id=\"schema-{0}\"><h3>{0}</h3><pre>{1}</pre></section>",
                esc(name),
                pretty(s)
            );
        }
    }
    h.push_str("</html>\n");
    h
}

fn has_tag(op: &Value, name: &str) -> bool {
    op["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(name)))
}

fn operations(doc: &Value) -> Vec<(&'static str, &str, &Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    out.push((method, path.as_str(), op));
                }
            }
        }
    }
    out
}

fn security_schemes(h: &mut String, doc: &Value) {
    let Some(schemes) = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
    else {
        return;
    };
    h.push_str("<h2>Authentication</h2><dl>");
    for (name, s) in schemes {
        let _ = write!(
            h,
            "<dt><code>{}</code></dt><dd>{}</dd>",
            esc(name),
            esc(text(s, "description"))
        );
    }
    h.push_str("</dl>");
}

fn operation(h: &mut String, method: &str, path: &str, op: &Value) {
    let _ = write!(
        h,
        "<section class=\"op\" id=\"{}\"><h3><span class=\"m\">{}</span> <code>{}</code></h3>\
         <p><strong>{}</strong></p><p>{}</p>",
        anchor(method, path),
        method,
        esc(path),
        esc(text(op, "summary")),
        esc(text(op, "description")),
    );
    if let Some(security) = op["security"].as_array() {
        let ways: Vec<String> = security
            .iter()
            .map(|req| {
                let names: Vec<&str> = req
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(" + ")
                }
            })
            .collect();
        let _ = write!(h, "<p>Authentication: {}</p>", esc(&ways.join(" or ")));
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        h.push_str("<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Schema</th><th>Description</th></tr>");
        for p in params {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(text(p, "name")),
                esc(text(p, "in")),
                p["required"].as_bool().unwrap_or(false),
                esc(&p.get("schema").map(|s| s.to_string()).unwrap_or_default()),
                esc(text(p, "description")),
            );
        }
        h.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        let _ = write!(
            h,
            "<h4>Request body</h4><p>{}</p>",
            esc(text(body, "description"))
        );
        media(h, &body["content"]);
    }
    h.push_str("<h4>Responses</h4>");
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            if r.get("$ref").is_some() {
                let _ = write!(
                    h,
                    "<p><code>{}</code>: the shared error response (an <a href=\"#schema-ErrorBody\">ErrorBody</a>)</p>",
                    esc(status)
                );
                continue;
            }
            let _ = write!(
                h,
                "<p><code>{}</code>: {}</p>",
                esc(status),
                esc(text(r, "description"))
            );
            media(h, &r["content"]);
        }
    }
    h.push_str("</section>");
}

fn media(h: &mut String, content: &Value) {
    let Some(content) = content.as_object() else {
        return;
    };
    for (kind, m) in content {
        let _ = write!(h, "<p><code>{}</code> ", esc(kind));
        if let Some(s) = m.get("schema") {
            h.push_str(&schema(s));
        }
        h.push_str("</p>");
        if let Some(example) = m.get("example") {
            let _ = write!(h, "<pre>{}</pre>", pretty(example));
        }
    }
}
