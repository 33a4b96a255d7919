//! The web UI: plain ES modules and one stylesheet under `ui/`, embedded in the binary at build
//! time and served at `/` and `/static/`. The pages call the same MLflow REST API the mlflow
//! client calls, plus keel's chart endpoint, so the UI holds no state and no logic of its own
//! on the server side. Each asset carries an `ETag` (a content hash), so a browser revalidates
//! it with one cheap request and downloads it again only after an upgrade.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// (file name, content type, bytes) of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "login.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/login.html"),
    ),
    ("login.js", JS, include_bytes!("../ui/login.js")),
    ("app.js", JS, include_bytes!("../ui/app.js")),
    ("lib.js", JS, include_bytes!("../ui/lib.js")),
    ("chart.js", JS, include_bytes!("../ui/chart.js")),
    ("experiments.js", JS, include_bytes!("../ui/experiments.js")),
    ("runs.js", JS, include_bytes!("../ui/runs.js")),
    ("run.js", JS, include_bytes!("../ui/run.js")),
    ("artifacts.js", JS, include_bytes!("../ui/artifacts.js")),
    ("compare.js", JS, include_bytes!("../ui/compare.js")),
    ("models.js", JS, include_bytes!("../ui/models.js")),
    ("datasets.js", JS, include_bytes!("../ui/datasets.js")),
    ("monitoring.js", JS, include_bytes!("../ui/monitoring.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The routes of the UI.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { asset("index.html", &h) }),
        )
        .route("/login", get(crate::auth::login_page))
        .route(
            "/static/{file}",
            get(|Path(file): Path<String>, h: HeaderMap| async move { asset(&file, &h) }),
        )
}

/// Each asset's ETag, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, bytes)| {
                let hash = blake3::hash(bytes).to_hex();
                format!("\"{}\"", &hash[..20])
            })
            .collect()
    })
}

/// An embedded page (the sign-in page), as `/static/` serves it.
pub(crate) fn page(name: &str, req: &HeaderMap) -> Response {
    asset(name, req)
}

fn asset(name: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (_, content_type, bytes) = ASSETS[i];
    let etag = &etags()[i];
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's cold load fetches every asset at most once: they must stay within the 500 KB
    /// budget uncompressed (keel serves them as they are).
    #[test]
    fn the_whole_ui_fits_the_cold_load_budget() {
        let total: usize = ASSETS.iter().map(|(_, _, b)| b.len()).sum();
        assert!(total < 500_000, "the UI's assets are {total} bytes");
    }

    /// The modules a module imports: `from './x.js'` (static) and `import('./x.js')` (when a
    /// page opens).
    fn imports(text: &str) -> (Vec<&str>, Vec<&str>) {
        let after = |marker: &str| -> Vec<&str> {
            text.split(marker)
                .skip(1)
                .filter_map(|rest| rest.split('\'').next())
                .collect()
        };
        (after(" from './"), after("import('./"))
    }

    fn asset_text(name: &str) -> &'static str {
        let (_, _, bytes) = ASSETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not embedded"));
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// index.html preloads exactly the modules the runs table (the usual landing page) needs
    /// before it can ask for data, so a cold load fetches them in parallel instead of import by
    /// import, and compiles nothing another page needs.
    #[test]
    fn the_page_preloads_the_runs_tables_modules() {
        let mut needed = std::collections::BTreeSet::new();
        let mut todo = vec!["app.js", "runs.js"];
        while let Some(m) = todo.pop() {
            if needed.insert(m) {
                todo.extend(imports(asset_text(m)).0);
            }
        }
        needed.remove("app.js");
        let index = asset_text("index.html");
        assert!(index.contains("<script type=\"module\" src=\"/static/app.js\">"));
        let preloaded: std::collections::BTreeSet<&str> = index
            .split("<link rel=\"modulepreload\" href=\"/static/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(preloaded, needed);
    }

    /// Every module a page imports, statically or when it opens, is served: a missing entry
    /// would break the UI at run time. Every page module is reachable from the router.
    #[test]
    fn every_imported_module_is_an_asset() {
        let mut reachable = std::collections::BTreeSet::new();
        for (name, _, _) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let (fixed, lazy) = imports(asset_text(name));
            for module in fixed.into_iter().chain(lazy) {
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == module),
                    "{name} imports {module}, which is not embedded"
                );
                reachable.insert(module);
            }
        }
        for (name, _, _) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            assert!(
                *name == "app.js" || *name == "login.js" || reachable.contains(name),
                "{name} is embedded but nothing imports it"
            );
        }
    }
}
