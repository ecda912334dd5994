//! The OpenAPI document the admin API serves, checked against the live server: it documents
//! exactly the operations the API has, and each answers with a status it documents.

use std::collections::BTreeSet;

use hyper::Method;
use serde_json::{Map, Value};

use crate::support::{Admin, Host, function_bytes, within};

/// Every operation of the admin API. A route added without documentation, or documentation
/// left behind by a removed route, makes the documented set differ from this one.
const KNOWN_OPERATIONS: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/functions"),
    ("GET", "/v1/functions/{name}"),
    ("PUT", "/v1/functions/{name}"),
    ("DELETE", "/v1/functions/{name}"),
    ("GET", "/v1/functions/{name}/versions"),
    ("POST", "/v1/functions/{name}/rollback"),
    ("POST", "/v1/functions/{name}/signed-url"),
    ("GET", "/v1/functions/{name}/connections"),
    ("POST", "/v1/functions/{name}/groups/{group}/send"),
    ("POST", "/v1/connections/{id}/send"),
    ("DELETE", "/v1/connections/{id}"),
    ("GET", "/metrics"),
    ("GET", "/v1/functions/{name}/logs"),
];

/// The content type of responses that stream (the live logs).
const NDJSON: &str = "application/x-ndjson";

/// The HTTP methods an OpenAPI path item may describe.
const OPERATION_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One documented operation.
struct Operation {
    method: Method,
    path: String,
    /// The documented response statuses, such as `200` or `404`.
    statuses: BTreeSet<u16>,
    /// The content type of the documented request body, if it has one.
    request_content_type: Option<String>,
    /// The operation's own security requirements, or the document's if it has none.
    security: Value,
    /// Whether a success is a stream that stays open (newline-delimited JSON).
    streams: bool,
}

impl Operation {
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Values for the path placeholders of a documented operation.
struct Placeholders {
    name: String,
    id: String,
    group: String,
}

impl Placeholders {
    fn fill(&self, path: &str) -> String {
        path.replace("{name}", &self.name)
            .replace("{id}", &self.id)
            .replace("{group}", &self.group)
    }
}

fn object<'a>(value: &'a Value, what: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} should be an object, got {value}"))
}

/// The `{placeholders}` of a path template, in order.
fn template_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Checks the document's structure and returns its operations.
fn operations_of(document: &Value) -> Vec<Operation> {
    let version = document["openapi"]
        .as_str()
        .unwrap_or_else(|| panic!("the document names its OpenAPI version: {document}"));
    assert!(
        version.starts_with("3."),
        "an OpenAPI 3.x document, got {version}"
    );
    assert!(
        document["info"]["title"].is_string(),
        "info.title is required"
    );
    assert!(
        document["info"]["version"].is_string(),
        "info.version is required"
    );
    let schemes = document["components"]["securitySchemes"].clone();

    let mut operations = Vec::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in object(&document["paths"], "paths") {
        assert!(path.starts_with('/'), "paths start with a slash: {path}");
        for (method, operation) in object(item, path) {
            if !OPERATION_METHODS.contains(&method.as_str()) {
                continue;
            }
            let described = format!("{} {path}", method.to_uppercase());
            let responses = object(&operation["responses"], &format!("{described} responses"));
            assert!(!responses.is_empty(), "{described} documents its responses");
            let statuses: BTreeSet<u16> = responses
                .keys()
                .map(|status| {
                    status
                        .parse()
                        .unwrap_or_else(|_| panic!("{described}: {status:?} is not a status"))
                })
                .collect();

            // Every placeholder is a required path parameter, and every path parameter a
            // placeholder.
            let mut declared: Vec<&str> = operation["parameters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|parameter| parameter["in"] == "path")
                .map(|parameter| {
                    assert_eq!(parameter["required"], true, "{described}: {parameter}");
                    parameter["name"].as_str().expect("a parameter has a name")
                })
                .collect();
            declared.sort_unstable();
            let mut placeholders = template_parameters(path);
            placeholders.sort_unstable();
            assert_eq!(declared, placeholders, "{described}: path parameters");

            if let Some(id) = operation["operationId"].as_str() {
                assert!(
                    operation_ids.insert(id.to_owned()),
                    "{described}: duplicate id {id}"
                );
            }
            let security = operation
                .get("security")
                .unwrap_or(&document["security"])
                .clone();
            for requirement in security.as_array().map(Vec::as_slice).unwrap_or_default() {
                for scheme in object(requirement, "a security requirement").keys() {
                    assert!(
                        schemes.get(scheme).is_some(),
                        "{described} uses the undefined security scheme {scheme}"
                    );
                }
            }
            let streams = responses.values().any(|response| {
                response["content"]
                    .as_object()
                    .is_some_and(|content| content.contains_key(NDJSON))
            });
            let request_content_type = operation["requestBody"]["content"]
                .as_object()
                .and_then(|content| content.keys().next().cloned());
            operations.push(Operation {
                method: method.to_uppercase().parse().expect("an HTTP method"),
                path: path.clone(),
                statuses,
                request_content_type,
                security,
                streams,
            });
        }
    }
    operations
}

/// Whether an operation can be called without credentials: no requirement at all, or an
/// empty one among the alternatives.
fn needs_no_token(operation: &Operation) -> bool {
    match operation.security.as_array() {
        None => true,
        Some(requirements) => {
            requirements.is_empty()
                || requirements
                    .iter()
                    .any(|requirement| requirement.as_object().is_some_and(Map::is_empty))
        }
    }
}

async fn fetch_document(admin: &Admin) -> Value {
    admin.get("/v1/openapi.json").await.expect_json(200)
}

/// Calls a documented operation with its placeholders filled and a body of the documented
/// content type, and returns the status after checking that it is a documented one.
async fn call(admin: &Admin, operation: &Operation, values: &Placeholders) -> u16 {
    let path = values.fill(&operation.path);
    if operation.streams {
        let status = stream_status(admin, &operation.method, &path).await;
        assert!(
            operation.statuses.contains(&status),
            "{} (documented {:?}) answered {status}",
            operation.describe(),
            operation.statuses
        );
        return status;
    }
    let body: Vec<u8> = match operation.request_content_type.as_deref() {
        None => Vec::new(),
        Some("application/wasm") => function_bytes("notify"),
        Some("application/json") => b"{}".to_vec(),
        Some(_) => b"hello from the OpenAPI check".to_vec(),
    };
    let answer = admin
        .request(
            operation.method.clone(),
            &path,
            operation.request_content_type.as_deref(),
            body,
        )
        .await;
    assert!(
        operation.statuses.contains(&answer.status),
        "{} (documented {:?}): {answer}",
        operation.describe(),
        operation.statuses
    );
    answer.status
}

/// The status of an operation whose answer is a stream that stays open: only the head is
/// read, and the stream is dropped.
async fn stream_status(admin: &Admin, method: &Method, path: &str) -> u16 {
    let mut request = hyper::Request::builder()
        .method(method.clone())
        .uri(format!("{}{path}", admin.base()));
    if let Some(token) = admin.token() {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("a valid request");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    within(
        &format!("the head of the answer to {method} {path}"),
        client.request(request),
    )
    .await
    .unwrap_or_else(|error| panic!("{method} {path} failed: {error}"))
    .status()
    .as_u16()
}

/// Destructive operations run last, removing the function very last, so every other
/// operation still finds what it needs.
fn in_safe_order(mut operations: Vec<Operation>) -> Vec<Operation> {
    operations.sort_by_key(|operation| {
        let deletes = operation.method == Method::DELETE;
        (
            deletes,
            deletes && operation.path.starts_with("/v1/functions/"),
        )
    });
    operations
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_lists_exactly_the_operations_the_api_has() {
    let host = Host::builder().function("echo").start().await;
    let document = fetch_document(&host.admin()).await;

    let documented: BTreeSet<(String, String)> = operations_of(&document)
        .iter()
        .map(|operation| (operation.method.to_string(), operation.path.clone()))
        .collect();
    let known: BTreeSet<(String, String)> = KNOWN_OPERATIONS
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&known).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented operations the API is not known to have"
    );
    assert_eq!(
        known.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations of the API the document leaves out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_answers_with_a_documented_status() {
    // With a signing key, so minting a signed URL succeeds with real values.
    let host = Host::builder()
        .function("notify")
        .signing_key("an openapi check signing key of 32+ bytes")
        .start()
        .await;
    let admin = host.admin();
    let _bob = host.connect("notify?user=bob").await;
    let bob_id = admin.connections("notify").await[0]["id"]
        .as_str()
        .expect("a connection id")
        .to_owned();
    // A second version, so rolling back to the previous one can succeed.
    admin.deploy("notify", function_bytes("echo")).await;
    let operations = in_safe_order(operations_of(&fetch_document(&admin).await));

    // Values that name nothing: a name that cannot be a function's, an unknown connection
    // and group. Operations with placeholders must refuse them with a documented error.
    let bogus = Placeholders {
        name: "not.a.function".to_owned(),
        id: "no-such-connection".to_owned(),
        group: "no-such-group".to_owned(),
    };
    for operation in &operations {
        let status = call(&admin, operation, &bogus).await;
        if template_parameters(&operation.path).is_empty() {
            assert!((200..300).contains(&status), "{}", operation.describe());
        } else {
            assert!(
                (400..500).contains(&status),
                "{} with bogus values answered {status}",
                operation.describe()
            );
        }
    }

    // Real values: every operation succeeds.
    let real = Placeholders {
        name: "notify".to_owned(),
        id: bob_id,
        group: "user:bob".to_owned(),
    };
    for operation in &operations {
        let status = call(&admin, operation, &real).await;
        assert!(
            (200..300).contains(&status),
            "{} with real values answered {status}",
            operation.describe()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undocumented_method_on_a_documented_path_gets_405() {
    let host = Host::builder().function("echo").start().await;
    let admin = host.admin();
    let operations = operations_of(&fetch_document(&admin).await);
    let values = Placeholders {
        name: "echo".to_owned(),
        id: "no-such-connection".to_owned(),
        group: "no-such-group".to_owned(),
    };

    let paths: BTreeSet<&str> = operations.iter().map(|o| o.path.as_str()).collect();
    for path in paths {
        let documented: BTreeSet<String> = operations
            .iter()
            .filter(|operation| operation.path == path)
            .map(|operation| operation.method.to_string())
            .collect();
        for method in [Method::PATCH, Method::POST, Method::PUT, Method::DELETE] {
            if documented.contains(method.as_str()) {
                continue;
            }
            let answer = admin
                .request(method.clone(), &values.fill(path), None, Vec::new())
                .await
                .expect_status(405);
            // The methods the server says it allows are the documented ones (HEAD comes
            // with every GET).
            let allowed: BTreeSet<String> = answer
                .header("allow")
                .unwrap_or_else(|| panic!("a 405 says what is allowed: {answer}"))
                .split(',')
                .map(|method| method.trim().to_owned())
                .filter(|method| method != "HEAD")
                .collect();
            assert_eq!(allowed, documented, "{method} {path}: {answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_that_needs_the_token_documents_401_and_answers_it_without_one() {
    let host = Host::builder().function("echo").start().await;
    let admin = host.admin();
    let operations = operations_of(&fetch_document(&admin).await);
    let values = Placeholders {
        name: "echo".to_owned(),
        id: "no-such-connection".to_owned(),
        group: "no-such-group".to_owned(),
    };

    for operation in &operations {
        let answer = admin
            .without_token()
            .request(
                operation.method.clone(),
                &values.fill(&operation.path),
                None,
                Vec::new(),
            )
            .await;
        if needs_no_token(operation) {
            assert_ne!(
                answer.status,
                401,
                "{} needs no token",
                operation.describe()
            );
        } else {
            assert_eq!(answer.status, 401, "{}: {answer}", operation.describe());
            assert!(
                operation.statuses.contains(&401),
                "{} needs the token, so it should document 401 (documented {:?})",
                operation.describe(),
                operation.statuses
            );
        }
    }
}
