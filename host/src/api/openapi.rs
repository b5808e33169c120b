//! The OpenAPI 3.1 description of the API, served at `/openapi.json`.
//!
//! Nothing here is kept by hand: each handler carries its own
//! `#[utoipa::path]` (method, path, parameters, body, responses) and is
//! registered with utoipa-axum's `routes!`, which adds the route and its
//! description together. This module adds what no single handler says: the
//! bearer scheme every route needs unless it says otherwise, the `Problem`
//! schema, and the shared problem responses.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The media type of every error.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kiln",
        description = "Batch processing of objects in buckets with WebAssembly plugins. \
                       Every route but the health checks and this document needs `Authorization: Bearer TOKEN`. \
                       Errors are RFC 9457 problems (`application/problem+json`); `field` names the request field at fault."
    ),
    components(schemas(super::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness, and this document; no token needed"),
        (name = "jobs", description = "Jobs: a selection of objects, a style, an output template"),
        (name = "tasks", description = "A job's tasks: one per source object"),
        (name = "styles", description = "Saved styles: a plugin and its parameters, by name"),
        (name = "buckets", description = "The buckets the daemon knows"),
        (name = "plugins", description = "WebAssembly components: upload, list, publish, delete"),
        (name = "tenants", description = "Tenants and their quotas (the admin's)"),
        (name = "tokens", description = "Tenants' bearer tokens (the admin's)"),
        (name = "roles", description = "Roles: grants on bucket prefixes"),
    )
)]
pub struct ApiDoc;

/// `bearer`, required by every operation that does not say `security(())`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The admin token (`KILN_ADMIN_TOKEN`), or a tenant's from `POST /v1/tenants/{name}/tokens`",
            ))
            .build();
        api.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
        api.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// Problem responses with these statuses (0: none), for `responses(...)` of
/// `#[utoipa::path]`: `Problems<400, 401, 404>`.
pub struct Problems<
    const A: u16,
    const B: u16 = 0,
    const C: u16 = 0,
    const D: u16 = 0,
    const E: u16 = 0,
    const F: u16 = 0,
    const G: u16 = 0,
>;

impl<const A: u16, const B: u16, const C: u16, const D: u16, const E: u16, const F: u16, const G: u16> IntoResponses
    for Problems<A, B, C, D, E, F, G>
{
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [A, B, C, D, E, F, G].into_iter().filter(|&s| s != 0).map(|s| (s.to_string(), problem_response(s))).collect()
    }
}

fn problem_response(status: u16) -> RefOr<utoipa::openapi::Response> {
    let description = match status {
        400 => "Bad request: a path or query parameter that does not parse, or a body cut short",
        401 => "Missing, malformed, unknown or revoked bearer token",
        403 => "The caller may not do this",
        404 => "Not found, or not the caller's to see",
        405 => "The path does not take this method",
        409 => "Conflicts with the current state",
        413 => "The body is too large",
        422 => "The body (or a parameter) is well-formed but invalid; `field` names it",
        429 => "A quota of the tenant is exhausted",
        500 => "Internal error",
        502 => "A bucket did not answer (unreachable, refusing or failing); the detail names it",
        503 => "The store cannot be written (a full or failing disk); retry after `Retry-After` seconds",
        _ => "Error",
    };
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
        .into()
}

/// The whole description, as the router registers it.
pub fn spec() -> utoipa::openapi::OpenApi {
    // The body limit shapes no route's description.
    super::api(0).into_openapi()
}

fn spec_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(spec()).expect("the OpenAPI document serializes");
        touch_up(&mut json);
        json.to_string()
    })
}

/// What utoipa 5 writes short of OpenAPI: link fields in snake case
/// (`operation_id` for `operationId`), and responses described as "".
fn touch_up(v: &mut serde_json::Value) {
    let Some(m) = v.as_object_mut() else { return };
    if let Some(serde_json::Value::Object(links)) = m.get_mut("links") {
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (from, to) in
                [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
            {
                if let Some(x) = link.remove(from) {
                    link.insert(to.into(), x);
                }
            }
        }
    }
    if let Some(serde_json::Value::Object(responses)) = m.get_mut("responses") {
        for (status, r) in responses.iter_mut() {
            if r.get("description").is_some_and(|d| d == "") {
                let reason = status
                    .parse()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                    .and_then(|s| s.canonical_reason());
                r["description"] = reason.unwrap_or("Success").into();
            }
        }
    }
    m.values_mut().for_each(touch_up);
}

/// This document: every route, its parameters, bodies and responses.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], spec_json())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// (path, method) of every route a router serves, read from its `Debug`
    /// (axum offers no other listing): its path table, and each method router's
    /// endpoints that are not `None`.
    fn served(router: &axum::Router<super::super::AppState>) -> BTreeSet<(String, String)> {
        let text = format!("{router:?}");
        // Only the path router: the fallback router has paths of its own.
        let path_router =
            &text[..text.find("fallback_router:").expect("axum's Router debug output names fallback_router")];
        let nodes = &path_router
            [path_router.find("node: Node { paths: {").expect("axum's PathRouter debug output has its node")..];
        let mut paths = BTreeMap::new();
        for entry in nodes.split("RouteId(").skip(1) {
            let (id, rest) = entry.split_once("): \"").expect("RouteId(n): \"path\"");
            paths.insert(id.to_string(), rest[..rest.find('"').unwrap()].to_string());
        }
        let routes = &path_router[..path_router.find("node: Node {").unwrap()];
        let mut out = BTreeSet::new();
        for entry in routes.split("RouteId(").skip(1) {
            let (id, rest) = entry.split_once(')').unwrap();
            let path = paths.get(id).unwrap_or_else(|| panic!("route {id} has no path in {nodes}"));
            let router = &rest[rest
                .find("MethodRouter {")
                .unwrap_or_else(|| panic!("route {path} is not a method router: {rest}"))..];
            for method in ["get", "head", "delete", "options", "patch", "post", "put", "trace", "connect"] {
                let field = format!("{method}: ");
                let at = router.find(&field).unwrap_or_else(|| panic!("no `{field}` in {router}")) + field.len();
                if !router[at..].starts_with("None") {
                    out.insert((path.clone(), method.to_string()));
                }
            }
        }
        assert!(out.len() > 10, "read too few routes from the router's Debug output: {text}");
        out
    }

    fn documented(spec: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        let json = serde_json::to_value(spec).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((path.clone(), method.clone()));
            }
        }
        out
    }

    #[test]
    fn the_spec_lists_every_route_the_router_serves() {
        let mut served = served(&super::super::all_routes(1));
        // axum answers HEAD wherever there is a GET; OpenAPI leaves HEAD implied.
        served.retain(|(_, m)| m != "head");
        // The web console's files are pages, not API.
        served.retain(|(p, _)| p != "/" && !p.starts_with("/console/"));
        let documented = documented(&spec());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes served but not in /openapi.json: register them with `routes!` and `#[utoipa::path]`: {undocumented:?}"
        );
        let missing: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "routes in /openapi.json that nothing serves: {missing:?}");
    }

    #[test]
    fn every_reference_resolves_and_errors_are_problems() {
        let json: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&str)) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                        f(r);
                    }
                    m.values().for_each(|v| walk(v, f));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
                _ => {}
            }
        }
        walk(&json, &mut |r| {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(schemas.contains_key(name), "$ref {r} does not resolve");
        });
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let public = op["security"] == serde_json::json!([{}]);
                assert!(public || responses.contains_key("401"), "{method} {path} needs a token but documents no 401");
                for (status, r) in responses {
                    // The health checks answer probes in plain text; the API, in problems.
                    if !status.starts_with('2') && !public {
                        assert!(
                            r["content"][PROBLEM_JSON].is_object(),
                            "{method} {path} {status} is not a problem: {r}"
                        );
                    }
                }
            }
        }
        assert!(json["paths"]["/v1/jobs"]["post"]["requestBody"].is_object());
        // Links name operations that exist, by parameters those take.
        let mut ops = BTreeMap::new();
        for item in json["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let params: BTreeSet<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect();
                ops.insert(op["operationId"].as_str().unwrap().to_string(), params);
            }
        }
        let mut links = 0;
        walk_links(&json["paths"], &mut |name, link| {
            links += 1;
            let target = link["operationId"].as_str().unwrap();
            let params = ops.get(target).unwrap_or_else(|| panic!("link {name} names no operation: {target}"));
            for p in link["parameters"].as_object().unwrap().keys() {
                assert!(params.contains(p), "link {name} to {target} passes `{p}`, which it does not take");
            }
        });
        assert!(links > 10, "{links} links");
    }

    fn walk_links(v: &serde_json::Value, f: &mut dyn FnMut(&str, &serde_json::Value)) {
        if let Some(m) = v.as_object() {
            if let Some(links) = m.get("links").and_then(|l| l.as_object()) {
                links.iter().for_each(|(name, link)| f(name, link));
            }
            m.values().for_each(|v| walk_links(v, f));
        }
    }
}
