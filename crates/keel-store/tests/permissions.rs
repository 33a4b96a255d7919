//! Permission-aware queries against an in-memory reference, as property tests: random users,
//! grants, roles (with named and `*` permissions), memberships, default levels and token
//! scopes; the store's grant lookup and its filtered experiment search (in the SQL, page by
//! page) must answer exactly what the reference computes. On SQLite, and on the PostgreSQL of
//! `KEEL_TEST_DATABASE_URL` (a schema per case, dropped afterwards).

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_answers_as_the_reference(w in world()) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("keel.db").display());
            let store = keel_store::open_metadata_store(&url, "mlflow-artifacts:").await.unwrap();
            check(&store, &w).await
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn postgres_answers_as_the_reference(w in world()) {
        let Some(admin) = keel_testenv::postgres_url("postgres_answers_as_the_reference") else {
            return Ok(());
        };
        runtime().block_on(async {
            let schema = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
            let store = keel_store::open_metadata_store(&url, "mlflow-artifacts:").await.unwrap();
            let result = check(&store, &w).await;
            drop(store);
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
            result
        })?;
    }
}
