//! The audit log on SQLite and on the PostgreSQL of `KEEL_TEST_DATABASE_URL` (a schema per
//! test, dropped afterwards): entries carry their context and the subject's state before and
//! after, failed writes leave none, concurrent writers keep one unbroken chain, every kind of
//! tampering a database user could do is found by `verify`, and replaying the log answers
//! where an alias pointed after any sequence of registry changes exactly as the store did.

use std::future::Future;
use std::sync::Arc;

use keel_core::MetadataStore;
use keel_core::audit::{self, Context, Filter, Head};
use keel_core::entities::{Metric, Tag};
use keel_core::store::{CreateModelVersion, CreateRun};
use proptest::prelude::*;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// A raw connection to the store's database, for tampering with it as a database user could.
enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Raw {
    async fn exec(&mut self, sql: &str) {
        let text = || sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Raw::Sqlite(c) => sqlx::query(text()).execute(c).await.map(|_| ()),
            Raw::Pg(c) => sqlx::query(text()).execute(c).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Runs `body` on a fresh SQLite store and, when a PostgreSQL is configured, on a fresh
/// schema of it.
async fn on_both<F, Fut>(test: &str, body: F)
where
    F: Fn(Arc<dyn MetadataStore>, Raw) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    let store = keel_store::open_metadata_store(
        &format!("sqlite://{}", path.display()),
        "mlflow-artifacts:",
    )
    .await
    .unwrap();
    let raw = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    body(store, Raw::Sqlite(raw)).await;
    let Some(admin) = keel_testenv::postgres_url(test) else {
        return;
    };
    let schema = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
    let store = keel_store::open_metadata_store(&url, "mlflow-artifacts:")
        .await
        .unwrap();
    let raw = PgConnection::connect(&url).await.unwrap();
    body(store.clone(), Raw::Pg(raw)).await;
    drop(store);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn entries(store: &Arc<dyn MetadataStore>) -> Vec<audit::Entry> {
    store
        .audit_entries(Filter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn version(store: &Arc<dyn MetadataStore>, name: &str) -> String {
    store
        .create_model_version(CreateModelVersion {
            name: name.into(),
            source: "mlflow-artifacts:/m".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .version
}

#[test]
fn entries_name_who_what_and_the_state_around_each_write() {
    runtime().block_on(on_both(
        "entries_name_who_what_and_the_state_around_each_write",
        |store, _| async move {
            // Nothing is logged before the log is enabled.
            store
                .create_registered_model("early", vec![], "")
                .await
                .unwrap();
            store.enable_audit().await.unwrap();
            assert!(store.audit_enabled().await.unwrap());
            let ctx = Arc::new(
                Context::new(
                    "alice",
                    "10.0.0.7",
                    "POST /api/2.0/mlflow/registered-models/alias",
                )
                .with_request(Some(serde_json::json!({"alias": "champion"}))),
            );
            audit::scope(ctx.clone(), async {
                store
                    .create_registered_model("churn", vec![], "")
                    .await
                    .unwrap();
                version(&store, "churn").await;
                version(&store, "churn").await;
                store.set_alias("churn", "champion", "1").await.unwrap();
                store.set_alias("churn", "champion", "2").await.unwrap();
                // A refused write leaves no entry.
                store.set_alias("churn", "champion", "9").await.unwrap_err();
                store
                    .rename_registered_model("churn", "churn-v2")
                    .await
                    .unwrap();
            })
            .await;
            assert_eq!(ctx.written(), 6);
            let log = entries(&store).await;
            let kinds: Vec<(&str, &str)> = log
                .iter()
                .map(|e| (e.subject.kind.as_str(), e.subject.id.as_str()))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("audit", "log"),
                    ("registered_model", "churn"),
                    ("model_version", "churn/1"),
                    ("model_version", "churn/2"),
                    ("registered_model", "churn"),
                    ("registered_model", "churn"),
                    ("registered_model", "churn-v2"),
                ]
            );
            assert_eq!(
                log.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=7).collect::<Vec<_>>()
            );
            let moved = &log[5];
            assert_eq!(
                (moved.actor.as_str(), moved.source.as_str()),
                ("alice", "10.0.0.7")
            );
            assert_eq!(moved.action, "POST /api/2.0/mlflow/registered-models/alias");
            assert_eq!(
                moved.request,
                Some(serde_json::json!({"alias": "champion"}))
            );
            let alias = |v: &Option<serde_json::Value>| {
                v.as_ref().unwrap()["aliases"][0]["version"].clone()
            };
            assert_eq!(alias(&moved.before), "1");
            assert_eq!(alias(&moved.after), "2");
            assert!(log[1].before.is_none());
            assert_eq!(log[1].after.as_ref().unwrap()["name"], "churn");
            let renamed = &log[6];
            assert_eq!(renamed.before.as_ref().unwrap()["name"], "churn");
            assert_eq!(renamed.after.as_ref().unwrap()["name"], "churn-v2");
            // Writes outside any scope are the system's.
            store.delete_registered_model("early").await.unwrap();
            let last = entries(&store).await.pop().unwrap();
            assert_eq!(last.actor, "system");
            assert!(last.after.is_none() && last.before.is_some());
            let v = audit::verify(&*store, &[]).await.unwrap();
            assert!(v.intact(), "{:?}", v.problems);
            assert_eq!(v.entries, 8);
            assert_eq!(v.last, store.audit_head().await.unwrap());
            // Filters narrow in the SQL.
            let only = |f: Filter| {
                let store = store.clone();
                async move {
                    store
                        .audit_entries(Filter { limit: 100, ..f })
                        .await
                        .unwrap()
                }
            };
            assert_eq!(
                only(Filter {
                    actor: Some("alice".into()),
                    ..Default::default()
                })
                .await
                .len(),
                6
            );
            assert_eq!(
                only(Filter {
                    kind: Some("registered_model".into()),
                    id: Some("churn".into()),
                    ..Default::default()
                })
                .await
                .len(),
                3
            );
            assert_eq!(
                only(Filter {
                    action: Some("alias".into()),
                    ..Default::default()
                })
                .await
                .len(),
                6
            );
            assert_eq!(
                only(Filter {
                    after_seq: Some(6),
                    ..Default::default()
                })
                .await
                .len(),
                2
            );
            let t = log[3].time;
            assert!(
                only(Filter {
                    since: Some(t),
                    until: Some(t),
                    ..Default::default()
                })
                .await
                .iter()
                .all(|e| e.time == t)
            );
        },
    ));
}

#[test]
fn run_data_and_concurrent_writers_keep_one_chain() {
    runtime().block_on(on_both(
        "run_data_and_concurrent_writers_keep_one_chain",
        |store, _| async move {
            store.enable_audit().await.unwrap();
            let exp = store.create_experiment("e", None, vec![]).await.unwrap();
            let run = store
                .create_run(CreateRun {
                    experiment_id: exp.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let run_id = run.info.run_id.clone();
            let mut tasks = Vec::new();
            for w in 0..8 {
                let (store, run_id) = (store.clone(), run_id.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..10 {
                        let metric = Metric::new(format!("m{w}"), i as f64, i, i);
                        store
                            .log_batch(
                                &run_id,
                                vec![metric],
                                vec![],
                                vec![Tag::new(format!("t{w}"), i.to_string())],
                            )
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let hist = store.metric_history(&run_id, "m3", 0, 100).await.unwrap();
            assert_eq!(hist.items.len(), 10);
            let log = entries(&store).await;
            let batches = log
                .iter()
                .filter(|e| e.subject.kind == "run" && e.subject.id == run_id)
                .count();
            // One for the run's creation, one per batch.
            assert_eq!(batches, 81);
            let v = audit::verify(&*store, &[]).await.unwrap();
            assert!(v.intact(), "{:?}", v.problems);
            assert_eq!(v.entries as usize, log.len());
        },
    ));
}

#[test]
fn verify_finds_every_kind_of_tampering() {
    runtime().block_on(on_both("verify_finds_every_kind_of_tampering", |store, mut raw| async move {
        store.enable_audit().await.unwrap();
        for i in 0..6 {
            store.create_registered_model(&format!("m{i}"), vec![], "").await.unwrap();
        }
        let clean = audit::verify(&*store, &[]).await.unwrap();
        assert!(clean.intact(), "{:?}", clean.problems);
        let recorded: Head = clean.last.clone().unwrap();
        let problems = |store: Arc<dyn MetadataStore>, expect: Vec<Head>| async move {
            audit::verify(&*store, &expect).await.unwrap().problems
        };

        // A changed field.
        raw.exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").await;
        let p = problems(store.clone(), vec![]).await;
        assert!(p.iter().any(|p| p.contains("entry 3 was changed")), "{p:?}");
        raw.exec("UPDATE audit_log SET actor = 'system' WHERE seq = 3").await;
        assert!(problems(store.clone(), vec![]).await.is_empty());

        // A changed state, its hash recomputed by hand: the next entry's link breaks.
        let mut e3 = entries(&store).await.remove(2);
        e3.after = Some(serde_json::json!({"name": "forged"}));
        let forged = e3.compute_hash();
        raw.exec(&format!(
            "UPDATE audit_log SET state_after = '{{\"name\":\"forged\"}}', hash = '{forged}' WHERE seq = 3"
        ))
        .await;
        let p = problems(store.clone(), vec![]).await;
        assert!(p.iter().any(|p| p.contains("entry 4 does not follow entry 3")), "{p:?}");

        // A deleted entry in the middle.
        raw.exec("DELETE FROM audit_log WHERE seq = 5").await;
        let p = problems(store.clone(), vec![]).await;
        assert!(p.iter().any(|p| p.contains("entries 5 to 5 are missing")), "{p:?}");

        // The last entry cut off: the head still names it.
        raw.exec("DELETE FROM audit_log WHERE seq = 7").await;
        let p = problems(store.clone(), vec![]).await;
        assert!(p.iter().any(|p| p.contains("head says entry 7")), "{p:?}");

        // The whole chain rewritten from entry 2 on, head included: consistent in itself, so
        // only a head recorded earlier shows it.
        raw.exec("DELETE FROM audit_log WHERE seq > 1").await;
        let mut prev = entries(&store).await.remove(0).hash;
        for seq in 2..=7_i64 {
            let mut e = audit::Entry {
                seq,
                time: 1,
                actor: "mallory".into(),
                source: String::new(),
                action: String::new(),
                subject: audit::Subject::new("registered_model", format!("x{seq}")),
                request: None,
                before: None,
                after: None,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            raw.exec(&format!(
                "INSERT INTO audit_log (seq, time, actor, source, action, subject_kind, subject_id, prev_hash, hash) VALUES ({seq}, 1, 'mallory', '', '', 'registered_model', 'x{seq}', '{}', '{}')",
                e.prev_hash, e.hash
            ))
            .await;
            prev = e.hash;
        }
        raw.exec(&format!("UPDATE audit_head SET seq = 7, hash = '{prev}' WHERE id = 1")).await;
        assert!(problems(store.clone(), vec![]).await.is_empty());
        let p = problems(store.clone(), vec![recorded.clone()]).await;
        assert!(p.iter().any(|p| p.contains(&format!("entry {} has hash", recorded.seq))), "{p:?}");
        // A recorded head past the end is missing.
        raw.exec("DELETE FROM audit_log WHERE seq = 7").await;
        raw.exec("UPDATE audit_head SET seq = 6, hash = (SELECT hash FROM audit_log WHERE seq = 6) WHERE id = 1").await;
        let p = problems(store.clone(), vec![recorded]).await;
        assert!(p.iter().any(|p| p.contains("is not in the log")), "{p:?}");
    }));
}

/// One registry change in a random sequence.
#[derive(Debug, Clone)]
enum Op {
    NewVersion,
    SetAlias(usize, usize),
    DeleteAlias(usize),
    DeleteVersion(usize),
    Rename,
}

const ALIASES: [&str; 2] = ["champion", "challenger"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::NewVersion),
        4 => (0..2usize, 0..4usize).prop_map(|(a, v)| Op::SetAlias(a, v)),
        1 => (0..2usize).prop_map(Op::DeleteAlias),
        1 => (0..4usize).prop_map(Op::DeleteVersion),
        1 => Just(Op::Rename),
    ]
}

/// Applies `ops`, and after each checks that replaying the log up to its last entry answers
/// every alias of both names as the store does.
async fn replay_matches(store: Arc<dyn MetadataStore>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    store.enable_audit().await.unwrap();
    let names = ["m", "n"];
    let mut current = 0;
    store
        .create_registered_model("m", vec![], "")
        .await
        .unwrap();
    for op in ops {
        let name = names[current];
        let _ = match op {
            Op::NewVersion => store
                .create_model_version(CreateModelVersion {
                    name: name.into(),
                    source: "mlflow-artifacts:/m".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Op::SetAlias(a, v) => {
                store
                    .set_alias(name, ALIASES[a], &(v + 1).to_string())
                    .await
            }
            Op::DeleteAlias(a) => store.delete_alias(name, ALIASES[a]).await,
            Op::DeleteVersion(v) => store.delete_model_version(name, &(v + 1).to_string()).await,
            Op::Rename => {
                let r = store
                    .rename_registered_model(name, names[1 - current])
                    .await;
                if r.is_ok() {
                    current = 1 - current;
                }
                r.map(|_| ())
            }
        };
        let log = entries(&store).await;
        for n in names {
            for a in ALIASES {
                let truth = store
                    .get_version_by_alias(n, a)
                    .await
                    .ok()
                    .map(|v| v.version);
                let replayed = audit::alias_at(&log, n, a).version;
                prop_assert_eq!(replayed, truth, "{}@{} after {:?}", n, a, op);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_log_answers_aliases_as_the_store_did(ops in prop::collection::vec(op(), 1..16)) {
        let result = std::sync::Mutex::new(Ok(()));
        runtime().block_on(on_both("replaying_the_log_answers_aliases_as_the_store_did", |store, _| {
            let ops = ops.clone();
            let result = &result;
            async move {
                let r = replay_matches(store, ops).await;
                if let Ok(mut slot) = result.lock()
                    && slot.is_ok()
                {
                    *slot = r;
                }
            }
        }));
        result.into_inner().unwrap()?;
    }
}

/// A protected alias's gates read the version's run: its metrics, the datasets it names, and
/// those dataset versions' latest validation.
#[test]
fn gates_judge_a_version_by_its_runs_metrics_lineage_and_validations() {
    use keel_core::approval::{Gates, MetricGate, evaluate};
    use keel_core::data::{DataKind, DataValidation, DataVersion};
    use keel_core::entities::{Dataset, DatasetInput};
    runtime().block_on(on_both("gates_judge_a_version", |store, _| async move {
        let exp = store.create_experiment("g", None, vec![]).await.unwrap();
        let run = |acc: f64, data: Option<String>| {
            let (store, exp) = (store.clone(), exp.clone());
            async move {
                let r = store
                    .create_run(CreateRun { experiment_id: exp, ..Default::default() })
                    .await
                    .unwrap()
                    .info
                    .run_id;
                store.log_batch(&r, vec![Metric::new("acc", acc, 1, 0)], vec![], vec![]).await.unwrap();
                if let Some(digest) = data {
                    let input = DatasetInput {
                        tags: vec![],
                        dataset: Dataset {
                            name: "train".into(),
                            digest,
                            source_type: "keel".into(),
                            source: "{}".into(),
                            schema: None,
                            profile: None,
                        },
                    };
                    store.log_inputs(&r, vec![input], vec![]).await.unwrap();
                }
                r
            }
        };
        let hash = "ab".repeat(32);
        let (data, _) = store
            .create_data_version(DataVersion {
                name: "train".into(),
                version: 0,
                hash: hash.clone(),
                kind: DataKind::File,
                format: "csv".into(),
                size_bytes: 10,
                file_count: 1,
                row_count: Some(2),
                schema: None,
                profile: None,
                source: "train.csv".into(),
                created_by: "t".into(),
                creation_time: 1,
                description: String::new(),
            })
            .await
            .unwrap();
        let validate = |passed: bool| {
            let store = store.clone();
            async move {
                let report = serde_json::json!({"passed": passed, "failed": if passed { 0 } else { 1 }, "results": [{}]});
                store
                    .record_validation(DataValidation::from_report("train", 1, "t", report).unwrap())
                    .await
                    .unwrap();
            }
        };
        store.create_registered_model("g", vec![], "").await.unwrap();
        let gates = Gates {
            metrics: vec![MetricGate { key: "acc".into(), min: Some(0.9), max: None }],
            validation_passed: true,
            lineage: true,
            model_card: false,
        };
        let verdicts = |run_id: String| {
            let (store, gates) = (store.clone(), gates.clone());
            async move {
                let v = store
                    .create_model_version(CreateModelVersion {
                        name: "g".into(),
                        source: "s3://b/m".into(),
                        run_id,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                evaluate(&*store, &v, &gates)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|g| (g.gate, g.passed))
                    .collect::<Vec<_>>()
            }
        };
        let names = |passed: [bool; 3]| {
            vec![
                ("metric acc".to_string(), passed[0]),
                ("lineage".to_string(), passed[1]),
                ("validation passed".to_string(), passed[2]),
            ]
        };
        // No data named: lineage and validation fail; the metric is below its bound.
        assert_eq!(verdicts(run(0.8, None).await).await, names([false, false, false]));
        // Data named but never validated, then validated and failing, then passing.
        let digest = hash[..keel_core::data::DIGEST_LEN].to_string();
        let r = run(0.95, Some(digest.clone())).await;
        assert_eq!(verdicts(r.clone()).await, names([true, true, false]));
        validate(false).await;
        assert_eq!(verdicts(r.clone()).await, names([true, true, false]));
        validate(true).await;
        assert_eq!(verdicts(r).await, names([true, true, true]));
        assert_eq!(data.version, 1);
        // A version naming no run fails every gate.
        assert_eq!(verdicts(String::new()).await, names([false, false, false]));
    }));
}
