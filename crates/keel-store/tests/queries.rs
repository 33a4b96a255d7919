//! The store's queries against in-memory references, as property tests, on SQLite and on the
//! PostgreSQL of `KEEL_TEST_DATABASE_URL` (a schema per case, dropped afterwards):
//!
//! - permission-aware queries: random users, grants, roles (with named and `*` permissions),
//!   memberships, default levels and token scopes; the store's grant lookup and its filtered
//!   experiment search (in the SQL, page by page) answer exactly what the reference computes;
//! - run search: random runs (metrics logged at several steps, params, tags, names, statuses,
//!   start times) and random filters in MLflow's grammar (every operator on metrics, params,
//!   tags and attributes, values holding quotes, backslashes and the characters `LIKE` and
//!   `GLOB` treat specially), parsed by keel's parser and compiled to SQL, with an optional
//!   order, read page by page: the runs and their order equal what the reference computes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use keel_core::MetadataStore;
use keel_core::auth::{GrantWrite, Permission, Reader, Resource, Subject};
use keel_core::entities::ViewType;
use keel_core::store::SearchExperiments;
use proptest::prelude::*;
use sqlx::{Connection, PgConnection};

const USERS: usize = 3;
const EXPERIMENTS: usize = 6;
const ROLES: usize = 2;

/// One random world of permissions.
#[derive(Debug, Clone)]
struct World {
    /// (user, experiment) -> the user's own grant.
    direct: BTreeMap<(usize, usize), Permission>,
    /// (role, experiment or None for `*`) -> the role's permission.
    roles: BTreeMap<(usize, Option<usize>), Permission>,
    /// (role, user) memberships.
    members: BTreeSet<(usize, usize)>,
    default: Permission,
    /// A token's list of experiments, when scoped.
    only: Option<BTreeSet<usize>>,
    page: usize,
}

fn level() -> impl Strategy<Value = Permission> {
    prop::sample::select(Permission::ALL.to_vec())
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::btree_map((0..USERS, 0..EXPERIMENTS), level(), 0..10),
        prop::collection::btree_map((0..ROLES, prop::option::of(0..EXPERIMENTS)), level(), 0..8),
        prop::collection::btree_set((0..ROLES, 0..USERS), 0..5),
        level(),
        prop::option::of(prop::collection::btree_set(0..EXPERIMENTS, 0..4)),
        1..4usize,
    )
        .prop_map(|(direct, roles, members, default, only, page)| World {
            direct,
            roles,
            members,
            default,
            only,
            page,
        })
}

impl World {
    /// What `user` holds on experiment `e` without the default: their own grant, else across
    /// their roles the highest of (the role's grant naming `e`, else its `*` one).
    fn held(&self, user: usize, e: usize) -> Option<Permission> {
        if let Some(p) = self.direct.get(&(user, e)) {
            return Some(*p);
        }
        self.members
            .iter()
            .filter(|(_, u)| *u == user)
            .filter_map(|(r, _)| {
                self.roles
                    .get(&(*r, Some(e)))
                    .or_else(|| self.roles.get(&(*r, None)))
                    .copied()
            })
            .max()
    }

    /// The experiments `user` may read under this world's default and scope.
    fn readable(&self, user: usize) -> BTreeSet<usize> {
        (0..EXPERIMENTS)
            .filter(|e| {
                self.held(user, *e)
                    .unwrap_or(self.default)
                    .allows(Permission::Read)
            })
            .filter(|e| self.only.as_ref().is_none_or(|o| o.contains(e)))
            .collect()
    }
}

/// Builds the world in `store`; returns the user ids and experiment ids.
async fn build(store: &Arc<dyn MetadataStore>, w: &World) -> (Vec<i64>, Vec<String>) {
    let mut users = Vec::new();
    for u in 0..USERS {
        users.push(
            store
                .create_user(&format!("user{u}"), Some("$argon2id$unused"), false)
                .await
                .unwrap()
                .id,
        );
    }
    let mut exps = Vec::new();
    for e in 0..EXPERIMENTS {
        exps.push(
            store
                .create_experiment(&format!("exp{e}"), None, vec![])
                .await
                .unwrap(),
        );
    }
    for ((u, e), p) in &w.direct {
        store
            .put_grant(
                &Resource::Experiment(exps[*e].clone()),
                &format!("user{u}"),
                *p,
                GrantWrite::Create,
            )
            .await
            .unwrap();
    }
    let mut roles = Vec::new();
    for r in 0..ROLES {
        roles.push(
            store
                .create_role(&format!("role{r}"), None)
                .await
                .unwrap()
                .id,
        );
    }
    for ((r, e), p) in &w.roles {
        let pattern = e.map(|e| exps[e].clone()).unwrap_or_else(|| "*".into());
        store
            .add_role_permission(roles[*r], "experiment", &pattern, *p)
            .await
            .unwrap();
    }
    for (r, u) in &w.members {
        store
            .assign_role(&format!("user{u}"), roles[*r])
            .await
            .unwrap();
    }
    (users, exps)
}

/// Checks the store against the reference for every user.
async fn check(store: &Arc<dyn MetadataStore>, w: &World) -> Result<(), TestCaseError> {
    let (users, exps) = build(store, w).await;
    let index = |id: &str| exps.iter().position(|e| e == id).unwrap();
    for (u, uid) in users.iter().enumerate() {
        for (e, id) in exps.iter().enumerate() {
            let got = store
                .resolve(*uid, &Subject::Experiment(id.clone()))
                .await
                .unwrap()
                .map(|(_, held)| held);
            prop_assert_eq!(got, Some(w.held(u, e)), "user {} experiment {}", u, e);
        }
        let reader = Reader {
            user_id: *uid,
            admin: false,
            default_read: w.default.allows(Permission::Read),
            only: w
                .only
                .as_ref()
                .map(|o| o.iter().map(|e| exps[*e].clone()).collect()),
        };
        // Page by page, as a client would: every readable experiment once, nothing else.
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let page = store
                .search_experiments(SearchExperiments {
                    reader: Some(reader.clone()),
                    view: ViewType::ActiveOnly,
                    max_results: w.page,
                    offset,
                    ..Default::default()
                })
                .await
                .unwrap();
            prop_assert!(page.items.len() <= w.page);
            offset += page.items.len() as u64;
            seen.extend(
                page.items
                    .iter()
                    .filter(|x| x.name.starts_with("exp"))
                    .map(|x| index(&x.experiment_id)),
            );
            if page.next_page_token.is_none() {
                break;
            }
        }
        let distinct: BTreeSet<usize> = seen.iter().copied().collect();
        prop_assert_eq!(distinct.len(), seen.len(), "an experiment on two pages");
        prop_assert_eq!(distinct, w.readable(u), "user {}", u);
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `check` on a store in a fresh SQLite file.
async fn on_sqlite<F, Fut>(check: F) -> Result<(), TestCaseError>
where
    F: FnOnce(Arc<dyn MetadataStore>) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keel.db").display());
    let store = keel_store::open_metadata_store(&url, "mlflow-artifacts:")
        .await
        .unwrap();
    check(store).await
}

/// Runs `check` on a store in a fresh schema of the PostgreSQL at `admin`, dropped after.
async fn on_postgres<F, Fut>(admin: &str, check: F) -> Result<(), TestCaseError>
where
    F: FnOnce(Arc<dyn MetadataStore>) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let schema = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
    let store = keel_store::open_metadata_store(&url, "mlflow-artifacts:")
        .await
        .unwrap();
    let result = check(store).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();
    result
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_answers_as_the_reference(w in world()) {
        runtime().block_on(on_sqlite(|store| async move { check(&store, &w).await }))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn postgres_answers_as_the_reference(w in world()) {
        let Some(admin) = keel_testenv::postgres_url("postgres_answers_as_the_reference") else {
            return Ok(());
        };
        runtime().block_on(on_postgres(&admin, |store| async move { check(&store, &w).await }))?;
    }
}

mod run_search {
    //! Run search against an in-memory reference.

    use super::*;
    use keel_core::entities::{Metric, RunStatus, Tag};
    use keel_core::store::{CreateRun, SearchRuns};

    /// Texts for names, params and tags: equal, case-differing, and characters that `LIKE`,
    /// `GLOB` or the filter's quoting treat specially.
    const TEXTS: &[&str] = &[
        "a",
        "A",
        "ab",
        "aB",
        "a_b",
        "a%b",
        "axb",
        "x[y]",
        "x*y",
        "x?y",
        "o'k",
        "back\\slash",
        " a",
    ];
    /// `LIKE` patterns.
    const PATTERNS: &[&str] = &[
        "a%", "%b", "a_b", "A%", "%", "_", "%a%", "x[%", "x*%", "x?y", "%'%", "back\\%", "a", "__",
        "%B",
    ];
    const NUMBERS: &[f64] = &[-1.5, 0.0, 0.5, 1.0, 2.25, 1e10];
    const STATUSES: &[RunStatus] = &[RunStatus::Running, RunStatus::Finished, RunStatus::Failed];
    const KEYS: [&str; 2] = ["k1", "k2"];

    /// One run of a world.
    #[derive(Debug, Clone)]
    pub(super) struct RunSpec {
        name: usize,
        status: usize,
        start: i64,
        /// Per metric key: (step, value) of each logged value.
        metrics: [Vec<(i64, usize)>; 2],
        params: [Option<usize>; 2],
        tags: [Option<usize>; 2],
    }

    /// A comparison, with indices into the pools (or into the runs, for `run_id`).
    #[derive(Debug, Clone)]
    pub(super) enum Cond {
        Metric(usize, usize, usize),
        Kv(bool, usize, usize, usize, usize),
        Name(usize, usize, usize),
        Status(bool, usize),
        Start(usize, i64),
        RunIds(bool, Vec<usize>),
    }

    #[derive(Debug, Clone)]
    pub(super) struct Case {
        runs: Vec<RunSpec>,
        filter: Vec<Cond>,
        order: usize,
        page: usize,
    }

    const NUMERIC: [&str; 6] = ["=", "!=", "<", "<=", ">", ">="];
    /// Operators of params, tags (all) and names (the first four).
    const TEXTUAL: [&str; 6] = ["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"];
    const ORDERS: [&str; 6] = [
        "",
        "metrics.k1 DESC",
        "metrics.k2 ASC",
        "params.k1 ASC",
        "attributes.run_name DESC",
        "attributes.start_time ASC",
    ];

    fn run_spec() -> impl Strategy<Value = RunSpec> {
        let metric = prop::collection::vec((0i64..3, 0..NUMBERS.len()), 0..3);
        let kv = || prop::option::of(0..TEXTS.len());
        (
            0..TEXTS.len(),
            0..STATUSES.len(),
            0i64..4,
            [metric.clone(), metric],
            [kv(), kv()],
            [kv(), kv()],
        )
            .prop_map(|(name, status, start, metrics, params, tags)| RunSpec {
                name,
                status,
                start: 1_000 + start * 10,
                metrics,
                params,
                tags,
            })
    }

    fn cond(runs: usize) -> impl Strategy<Value = Cond> {
        prop_oneof![
            (0..2usize, 0..NUMERIC.len(), 0..NUMBERS.len())
                .prop_map(|(k, o, v)| Cond::Metric(k, o, v)),
            (
                any::<bool>(),
                0..2usize,
                0..TEXTUAL.len(),
                0..TEXTS.len(),
                0..PATTERNS.len() * 6
            )
                .prop_map(|(p, k, o, t, l)| Cond::Kv(p, k, o, t, l)),
            (0..4usize, 0..TEXTS.len(), 0..PATTERNS.len() * 6)
                .prop_map(|(o, t, l)| Cond::Name(o, t, l)),
            (any::<bool>(), 0..STATUSES.len()).prop_map(|(eq, s)| Cond::Status(eq, s)),
            (0..NUMERIC.len(), 0i64..5).prop_map(|(o, t)| Cond::Start(o, 995 + t * 10)),
            (any::<bool>(), prop::collection::vec(0..runs, 1..4))
                .prop_map(|(i, r)| Cond::RunIds(i, r)),
        ]
    }

    pub(super) fn case() -> impl Strategy<Value = Case> {
        prop::collection::vec(run_spec(), 1..9).prop_flat_map(|runs| {
            let n = runs.len();
            (
                Just(runs),
                prop::collection::vec(cond(n), 0..4),
                0..ORDERS.len(),
                1usize..5,
            )
                .prop_map(|(runs, filter, order, page)| Case {
                    runs,
                    filter,
                    order,
                    page,
                })
        })
    }

    /// What operator `op` compares with: for `LIKE` and `ILIKE` a pattern made from a text
    /// (itself, a prefix and `%`, `%` and a suffix, a character as `_`, upper case) or a fixed
    /// one, else the text `t`.
    fn operand(op: &str, t: usize, pattern: usize) -> String {
        let text = TEXTS[t];
        let chars: Vec<char> = text.chars().collect();
        let half = chars.len() / 2;
        match (op, pattern % 6) {
            ("LIKE" | "ILIKE", 0) => text.to_string(),
            ("LIKE" | "ILIKE", 1) => chars[..half].iter().collect::<String>() + "%",
            ("LIKE" | "ILIKE", 2) => "%".to_string() + &chars[half..].iter().collect::<String>(),
            ("LIKE" | "ILIKE", 3) => chars
                .iter()
                .enumerate()
                .map(|(i, c)| if i == half { '_' } else { *c })
                .collect(),
            ("LIKE" | "ILIKE", 4) => text.to_ascii_uppercase(),
            ("LIKE" | "ILIKE", _) => PATTERNS[pattern / 6 % PATTERNS.len()].to_string(),
            _ => text.to_string(),
        }
    }

    /// `s` as a single-quoted filter string (quotes doubled, backslashes escaped).
    fn quoted(s: &str) -> String {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    }

    /// SQL `LIKE` with `%` and `_` and no escape character; `fold` compares ASCII letters
    /// without case.
    fn like(value: &str, pattern: &str, fold: bool) -> bool {
        let norm = |s: &str| -> Vec<char> {
            s.chars()
                .map(|c| if fold { c.to_ascii_lowercase() } else { c })
                .collect()
        };
        let (v, p) = (norm(value), norm(pattern));
        // Classic wildcard matching by dynamic programming.
        let mut m = vec![vec![false; v.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            m[i][0] = m[i - 1][0] && p[i - 1] == '%';
            for j in 1..=v.len() {
                m[i][j] = match p[i - 1] {
                    '%' => m[i - 1][j] || m[i][j - 1],
                    '_' => m[i - 1][j - 1],
                    c => m[i - 1][j - 1] && c == v[j - 1],
                };
            }
        }
        m[p.len()][v.len()]
    }

    fn numeric(op: &str, a: f64, b: f64) -> bool {
        match op {
            "=" => a == b,
            "!=" => a != b,
            "<" => a < b,
            "<=" => a <= b,
            ">" => a > b,
            _ => a >= b,
        }
    }

    fn textual(op: &str, value: Option<&str>, v: &str) -> bool {
        match (op, value) {
            ("IS NULL", x) => x.is_none(),
            ("IS NOT NULL", x) => x.is_some(),
            (_, None) => false,
            ("=", Some(x)) => x == v,
            ("!=", Some(x)) => x != v,
            ("LIKE", Some(x)) => like(x, v, false),
            (_, Some(x)) => like(x, v, true),
        }
    }

    /// The latest value of a metric: highest step, then highest value (one timestamp).
    fn latest(values: &[(i64, usize)]) -> Option<f64> {
        values
            .iter()
            .map(|(step, v)| (*step, NUMBERS[*v]))
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(_, v)| v)
    }

    /// The filter's text and whether run `r` matches it.
    fn clause(c: &Cond, ids: &[String]) -> String {
        match c {
            Cond::Metric(k, o, v) => {
                format!("metrics.{} {} {}", KEYS[*k], NUMERIC[*o], NUMBERS[*v])
            }
            Cond::Kv(param, k, o, t, l) => {
                let entity = if *param { "params" } else { "tags" };
                match TEXTUAL[*o] {
                    op @ ("IS NULL" | "IS NOT NULL") => format!("{entity}.{} {op}", KEYS[*k]),
                    op => format!(
                        "{entity}.{} {op} {}",
                        KEYS[*k],
                        quoted(&operand(op, *t, *l))
                    ),
                }
            }
            Cond::Name(o, t, l) => {
                let op = TEXTUAL[*o];
                format!("attributes.run_name {op} {}", quoted(&operand(op, *t, *l)))
            }
            Cond::Status(eq, s) => format!(
                "attributes.status {} '{}'",
                if *eq { "=" } else { "!=" },
                STATUSES[*s].as_str()
            ),
            Cond::Start(o, t) => format!("attributes.start_time {} {t}", NUMERIC[*o]),
            Cond::RunIds(inside, rs) => {
                let list: Vec<String> = rs.iter().map(|r| quoted(&ids[*r])).collect();
                format!(
                    "attributes.run_id {} ({})",
                    if *inside { "IN" } else { "NOT IN" },
                    list.join(", ")
                )
            }
        }
    }

    fn matches(c: &Cond, r: &RunSpec, i: usize) -> bool {
        match c {
            Cond::Metric(k, o, v) => {
                latest(&r.metrics[*k]).is_some_and(|x| numeric(NUMERIC[*o], x, NUMBERS[*v]))
            }
            Cond::Kv(param, k, o, t, l) => {
                let held = if *param { r.params[*k] } else { r.tags[*k] };
                let op = TEXTUAL[*o];
                textual(op, held.map(|h| TEXTS[h]), &operand(op, *t, *l))
            }
            Cond::Name(o, t, l) => {
                let op = TEXTUAL[*o];
                textual(op, Some(TEXTS[r.name]), &operand(op, *t, *l))
            }
            Cond::Status(eq, s) => (r.status == *s) == *eq,
            Cond::Start(o, t) => numeric(NUMERIC[*o], r.start as f64, *t as f64),
            Cond::RunIds(inside, rs) => rs.contains(&i) == *inside,
        }
    }

    /// The reference order of the matching runs `hits` (indices).
    fn order(case: &Case, hits: &mut [usize], ids: &[String]) {
        use std::cmp::Ordering;
        let runs = &case.runs;
        // Missing last, then the value in the asked direction.
        fn keyed<T: PartialOrd>(a: Option<T>, b: Option<T>, asc: bool) -> Ordering {
            match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                    if asc { o } else { o.reverse() }
                }
            }
        }
        hits.sort_by(|&a, &b| {
            let (ra, rb) = (&runs[a], &runs[b]);
            let first = match case.order {
                1 => keyed(latest(&ra.metrics[0]), latest(&rb.metrics[0]), false),
                2 => keyed(latest(&ra.metrics[1]), latest(&rb.metrics[1]), true),
                3 => keyed(
                    ra.params[0].map(|x| TEXTS[x]),
                    rb.params[0].map(|x| TEXTS[x]),
                    true,
                ),
                4 => keyed(Some(TEXTS[ra.name]), Some(TEXTS[rb.name]), false),
                5 => ra.start.cmp(&rb.start),
                _ => Ordering::Equal,
            };
            first
                .then(rb.start.cmp(&ra.start))
                .then(ids[a].cmp(&ids[b]))
        });
    }

    /// Every run name against every fixed pattern and one made from it, each operator: the
    /// cases a random search rarely reaches in one go.
    pub(super) fn every_pattern() -> Vec<Case> {
        let run = |name| RunSpec {
            name,
            status: 0,
            start: 1_000,
            metrics: [vec![], vec![]],
            params: [Some(name), None],
            tags: [None, Some(name)],
        };
        let mut cases = Vec::new();
        for o in [2, 3] {
            for l in 0..PATTERNS.len() * 6 {
                for t in [0, l % TEXTS.len()] {
                    cases.push(Case {
                        runs: (0..TEXTS.len()).map(run).collect(),
                        filter: vec![Cond::Name(o, t, l)],
                        order: 0,
                        page: 100,
                    });
                }
            }
        }
        cases
    }

    pub(super) async fn check(
        store: &Arc<dyn MetadataStore>,
        case: &Case,
    ) -> Result<(), TestCaseError> {
        let exp = store
            .create_experiment(
                &format!("search-{}", uuid::Uuid::new_v4().simple()),
                None,
                vec![],
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for r in &case.runs {
            let run = store
                .create_run(CreateRun {
                    experiment_id: exp.clone(),
                    user_id: "u".into(),
                    start_time: r.start,
                    run_name: Some(TEXTS[r.name].to_string()),
                    tags: vec![],
                })
                .await
                .unwrap();
            let id = run.info.run_id.clone();
            let mut metrics = Vec::new();
            for (k, values) in r.metrics.iter().enumerate() {
                for (step, v) in values {
                    metrics.push(Metric::new(KEYS[k], NUMBERS[*v], 5_000, *step));
                }
            }
            let kv = |held: &[Option<usize>; 2]| -> Vec<Tag> {
                held.iter()
                    .enumerate()
                    .filter_map(|(k, h)| {
                        h.map(|h| Tag {
                            key: KEYS[k].into(),
                            value: TEXTS[h].into(),
                        })
                    })
                    .collect()
            };
            store
                .log_batch(&id, metrics, kv(&r.params), kv(&r.tags))
                .await
                .unwrap();
            store
                .update_run(&id, Some(STATUSES[r.status]), None, None)
                .await
                .unwrap();
            ids.push(id);
        }
        let text: Vec<String> = case.filter.iter().map(|c| clause(c, &ids)).collect();
        let text = text.join(" and ");
        let filter =
            keel_core::filter::runs::parse_filter(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let order_by = match ORDERS[case.order] {
            "" => vec![],
            o => vec![keel_core::filter::runs::parse_order(o).unwrap()],
        };
        let mut want: Vec<usize> = (0..case.runs.len())
            .filter(|&i| case.filter.iter().all(|c| matches(c, &case.runs[i], i)))
            .collect();
        order(case, &mut want, &ids);
        let want: Vec<&str> = want.iter().map(|&i| ids[i].as_str()).collect();
        let mut got = Vec::new();
        let mut offset = 0;
        loop {
            let page = store
                .search_runs(SearchRuns {
                    experiment_ids: vec![exp.clone()],
                    filter: filter.clone(),
                    view: ViewType::ActiveOnly,
                    max_results: case.page,
                    order_by: order_by.clone(),
                    offset,
                })
                .await
                .unwrap();
            prop_assert!(page.items.len() <= case.page);
            offset += page.items.len() as u64;
            got.extend(page.items.iter().map(|r| r.info.run_id.clone()));
            if page.next_page_token.is_none() {
                break;
            }
        }
        prop_assert_eq!(got, want, "filter: {}; order: {}", text, ORDERS[case.order]);
        Ok(())
    }
}

/// [`run_search::every_pattern`] on both engines, one store each.
#[test]
fn like_patterns_match_alike_on_both_engines() {
    let cases = run_search::every_pattern();
    runtime()
        .block_on(on_sqlite(|store| async move {
            for case in &cases {
                run_search::check(&store, case).await?;
            }
            Ok(())
        }))
        .unwrap();
    let Some(admin) = keel_testenv::postgres_url("like_patterns_match_alike_on_both_engines")
    else {
        return;
    };
    let cases = run_search::every_pattern();
    runtime()
        .block_on(on_postgres(&admin, |store| async move {
            for case in &cases {
                run_search::check(&store, case).await?;
            }
            Ok(())
        }))
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_searches_runs_as_the_reference(case in run_search::case()) {
        runtime().block_on(on_sqlite(|store| async move { run_search::check(&store, &case).await }))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn postgres_searches_runs_as_the_reference(case in run_search::case()) {
        let Some(admin) = keel_testenv::postgres_url("postgres_searches_runs_as_the_reference") else {
            return Ok(());
        };
        runtime().block_on(on_postgres(&admin, |store| async move { run_search::check(&store, &case).await }))?;
    }
}
