//! The PostgreSQL store against a real server: `KEEL_TEST_DATABASE_URL` (set by `.ci/run`).
//! Each test works in a schema of its own, created and dropped by the test, so tests running in
//! parallel never see each other's tables.

use keel_core::entities::{LifecycleStage, Tag, ViewType};
use keel_core::filter::experiments;
use keel_core::store::SearchExperiments;
use keel_core::{DataStore, ErrorCode, ExperimentStore, RunStore};
use keel_store::postgres::PgStore;
use sqlx::{Connection, PgConnection};

/// A schema of its own in the test database; `url` points the store at it.
struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(test: &str) -> Option<Schema> {
        let admin_url = keel_testenv::postgres_url(test)?;
        let name = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .expect("connect to KEEL_TEST_DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{name}");
        Some(Schema {
            admin_url,
            name,
            url,
        })
    }

    async fn drop(self) {
        let mut conn = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let Some(schema) = Schema::create("migrations_apply_once_and_a_newer_schema_is_refused").await
    else {
        return;
    };
    let known: Vec<i64> = keel_store::postgres::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(known, (1..=11).collect::<Vec<i64>>());
    let before = PgStore::schema_status(&schema.url).await.unwrap();
    assert_eq!(before.applied, Vec::<i64>::new());
    assert_eq!(before.pending, known);

    // Three servers starting at once migrate once (sqlx's advisory lock).
    let opened =
        futures::future::join_all((0..3).map(|_| PgStore::open(&schema.url, "mlflow-artifacts:")))
            .await;
    for o in &opened {
        assert!(o.is_ok(), "{:?}", o.as_ref().err());
    }
    let after = PgStore::schema_status(&schema.url).await.unwrap();
    assert_eq!((after.applied, after.pending), (known, vec![]));

    // A migration this keel does not know: the database was written by a newer keel.
    let mut conn = PgConnection::connect(&schema.url).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (999, 'future', true, '\\x00', 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = PgStore::open(&schema.url, "mlflow-artifacts:")
        .await
        .err()
        .expect("a newer schema must be refused");
    assert!(err.message.contains("newer keel"), "{}", err.message);
    assert_eq!(
        PgStore::schema_status(&schema.url).await.unwrap().unknown,
        vec![999]
    );
    schema.drop().await;
}

#[tokio::test]
async fn experiments_behave_as_on_sqlite() {
    let Some(schema) = Schema::create("experiments_behave_as_on_sqlite").await else {
        return;
    };
    let store = PgStore::open(&schema.url, "mlflow-artifacts:")
        .await
        .unwrap();
    let default = store.get_experiment("0").await.unwrap();
    assert_eq!(default.name, "Default");
    assert_eq!(default.artifact_location, "mlflow-artifacts:/0");

    let id = store
        .create_experiment("exp-a", None, vec![Tag::new("team", "growth")])
        .await
        .unwrap();
    let a = store.get_experiment(&id).await.unwrap();
    assert_eq!(a.artifact_location, format!("mlflow-artifacts:/{id}"));
    assert_eq!(a.tags, vec![Tag::new("team", "growth")]);
    let dup = store.create_experiment("exp-a", None, vec![]).await;
    assert_eq!(dup.unwrap_err().code, ErrorCode::ResourceAlreadyExists);
    for n in ["exp-b", "exp-c", "other"] {
        store.create_experiment(n, None, vec![]).await.unwrap();
    }

    // Search: filter, order, pages.
    let q = |filter: &str, order: &str, max: usize, offset: u64| SearchExperiments {
        view: ViewType::ActiveOnly,
        filter: experiments::parse_filter(filter).unwrap(),
        order_by: if order.is_empty() {
            vec![]
        } else {
            vec![experiments::parse_order(order).unwrap()]
        },
        max_results: max,
        offset,
        reader: None,
    };
    let page = store
        .search_experiments(q("name LIKE 'exp-%'", "name DESC", 2, 0))
        .await
        .unwrap();
    let names: Vec<_> = page.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["exp-c", "exp-b"]);
    assert!(page.next_page_token.is_some());
    let page = store
        .search_experiments(q("name LIKE 'exp-%'", "name DESC", 2, 2))
        .await
        .unwrap();
    let names: Vec<_> = page.items.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["exp-a"]);
    assert!(page.next_page_token.is_none());
    // LIKE is case-sensitive and ILIKE is not, as on SQLite and in MLflow.
    let like = store
        .search_experiments(q("name LIKE 'EXP-%'", "", 10, 0))
        .await
        .unwrap();
    assert!(like.items.is_empty());
    let ilike = store
        .search_experiments(q("name ILIKE 'EXP-%'", "", 10, 0))
        .await
        .unwrap();
    assert_eq!(ilike.items.len(), 3);
    let tagged = store
        .search_experiments(q("tags.team = 'growth'", "", 10, 0))
        .await
        .unwrap();
    assert_eq!(tagged.items.len(), 1);

    // Rename, tags, delete and restore.
    store.rename_experiment(&id, "exp-renamed").await.unwrap();
    let clash = store.rename_experiment(&id, "other").await;
    assert_eq!(clash.unwrap_err().code, ErrorCode::ResourceAlreadyExists);
    store
        .set_experiment_tag(&id, Tag::new("team", "risk"))
        .await
        .unwrap();
    store.delete_experiment_tag(&id, "team").await.unwrap();
    let missing = store.delete_experiment_tag(&id, "team").await;
    assert_eq!(missing.unwrap_err().code, ErrorCode::ResourceDoesNotExist);
    store.delete_experiment(&id).await.unwrap();
    let deleted = store.get_experiment(&id).await.unwrap();
    assert_eq!(deleted.lifecycle_stage, LifecycleStage::Deleted);
    assert!(
        store
            .set_experiment_tag(&id, Tag::new("k", "v"))
            .await
            .is_err()
    );
    store.restore_experiment(&id).await.unwrap();
    assert_eq!(
        store.restore_experiment(&id).await.unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        store.delete_experiment("0").await.unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    assert!(
        store
            .get_experiment_by_name("nope")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_experiment("12345").await.unwrap_err().code,
        ErrorCode::ResourceDoesNotExist
    );

    // Eight clients creating the same name at once: exactly one wins, the rest are told it exists.
    let results =
        futures::future::join_all((0..8).map(|_| store.create_experiment("race", None, vec![])))
            .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.code == ErrorCode::ResourceAlreadyExists)
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_metric_names_logged_at_once_by_many_writers() {
    let Some(schema) = Schema::create("new_metric_names_logged_at_once_by_many_writers").await
    else {
        return;
    };
    // Two stores on one database: two servers, each with its own cache of metric names.
    let a = PgStore::open(&schema.url, "mlflow-artifacts:")
        .await
        .unwrap();
    let b = PgStore::open(&schema.url, "mlflow-artifacts:")
        .await
        .unwrap();
    let run = a
        .create_run(keel_core::store::CreateRun {
            experiment_id: "0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .info
        .run_id;
    for round in 0..20 {
        let writes = (0..16).map(|w| {
            let store = if w % 2 == 0 { &a } else { &b };
            let metrics = (0..5)
                .map(|k| keel_core::entities::Metric::new(format!("r{round}-k{k}"), w as f64, 1, w))
                .collect();
            store.log_batch(&run, metrics, vec![], vec![])
        });
        for r in futures::future::join_all(writes).await {
            assert!(r.is_ok(), "round {round}: {:?}", r.err());
        }
    }
    let page = a.metric_history(&run, "r19-k4", 0, 100).await.unwrap();
    assert_eq!(page.items.len(), 16);
    schema.drop().await;
}

fn data_version(name: &str, hash_byte: char) -> keel_core::data::DataVersion {
    keel_core::data::DataVersion {
        name: name.into(),
        version: 0,
        hash: hash_byte.to_string().repeat(64),
        kind: keel_core::data::DataKind::File,
        format: "csv".into(),
        size_bytes: 10,
        file_count: 1,
        row_count: Some(2),
        schema: Some(serde_json::json!({"columns": []})),
        profile: None,
        source: "/tmp/x.csv".into(),
        created_by: "tester".into(),
        creation_time: 0,
        description: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_versions_number_once_under_concurrent_adds() {
    let Some(schema) = Schema::create("dataset_versions_number_once_under_concurrent_adds").await
    else {
        return;
    };
    let store = std::sync::Arc::new(
        PgStore::open(&schema.url, "mlflow-artifacts:")
            .await
            .unwrap(),
    );
    let (v1, created) = store
        .create_data_version(data_version("d", 'a'))
        .await
        .unwrap();
    assert_eq!((v1.version, created), (1, true));
    // The same content again is no new version.
    let (same, created) = store
        .create_data_version(data_version("d", 'a'))
        .await
        .unwrap();
    assert_eq!((same.version, created), (1, false));
    // Eight writers adding different content at once: versions 2..=9, each once.
    let mut tasks = Vec::new();
    for c in ['1', '2', '3', '4', '5', '6', '7', '8'] {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_data_version(data_version("d", c))
                .await
                .unwrap()
                .0
                .version
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=9).collect::<Vec<i64>>());
    let latest = store.get_data_version("d", None).await.unwrap();
    assert_eq!(latest.version, 9);
    assert_eq!(
        store.get_data_version("d", Some(1)).await.unwrap().schema,
        v1.schema
    );
    let err = store.get_data_version("d", Some(10)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
    let listed = store.list_data().await.unwrap();
    assert_eq!((listed.len(), listed[0].version_count), (1, 9));
    assert_eq!(store.list_data_versions("d").await.unwrap()[0].version, 9);
    let by_hash = store.data_versions_by_hash(&"a".repeat(64)).await.unwrap();
    assert_eq!(by_hash.len(), 1);
    assert!(store.data_uses(&"a".repeat(64)).await.unwrap().is_empty());
    drop(store);
    schema.drop().await;
}
