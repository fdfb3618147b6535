//! Push: a device sends its outbox mutations in sequence order. Each is applied through the
//! core's `execute_as` in the batch's transaction (its inserts held back and sent with the
//! batch's, see [`crate::deferred`]; or, when that cannot be trusted, in a savepoint of its
//! own), and its result is stored under (device, sequence) in that same transaction, with
//! the batch's others (one statement per hundred). A duplicate delivery is answered from the stored result and changes nothing; a gap (a lost earlier message) stops the batch and tells
//! the device which sequence to send next; a rejection is stored, put in the inbox of the
//! member who made it, and never blocks the mutations after it.
use crate::auth::Device;
use crate::deferred::Deferred;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use timebank_core::domain::hlc::Hlc;
use timebank_core::service::{self, Actor, Command, Ctx};
use timebank_core::{sql, Code, CoreError, Lang};
use timebank_migrations::SCHEMA_VERSION;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushMutation {
    /// UUIDv7 of the mutation.
    pub id: String,
    /// Per-device sequence, gap-free from 1.
    pub seq: i64,
    pub name: String,
    #[schema(value_type = Object)]
    pub args: Value,
    /// Hybrid logical clock of the device when the mutation was made.
    pub hlc: String,
    pub schema_version: i32,
    pub actor_id: String,
    /// The device's wall-clock time when the change was made (domain time: check-in and
    /// check-out minutes, the day of a credit). Clamped to the server's clock.
    #[serde(default)]
    pub at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushRequest {
    pub mutations: Vec<PushMutation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PushResult {
    pub seq: i64,
    pub mutation_id: String,
    /// `applied` or `rejected`.
    pub status: String,
    /// True when this is the stored answer to an earlier delivery.
    pub duplicate: bool,
    /// For `applied`: what the command produced. For `rejected`: `{code, detail, message}`.
    #[schema(value_type = Object)]
    pub result: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushResponse {
    pub results: Vec<PushResult>,
    /// The sequence the server expects next from this device.
    pub next_seq: i64,
    /// The batch was applied by the careful pass (see [`push`]); for the server's metrics.
    #[serde(skip)]
    pub carefully: bool,
}

/// The phases of a pushed batch's (or group's) transaction, timed for the server's metrics
/// (`timebank_push_phase_seconds_total`), so that a change to the push can be measured where
/// it acts rather than only by the benchmark's end-to-end rates, which vary by a quarter from
/// run to run on these machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Begin,
    Apply,
    Flush,
    Record,
    Log,
    Commit,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Begin,
        Phase::Apply,
        Phase::Flush,
        Phase::Record,
        Phase::Log,
        Phase::Commit,
    ];

    /// Its label in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Begin => "begin",
            Phase::Apply => "apply",
            Phase::Flush => "flush",
            Phase::Record => "record",
            Phase::Log => "log",
            Phase::Commit => "commit",
        }
    }

    /// What it covers, for the metric's help.
    pub fn what(self) -> &'static str {
        match self {
            Phase::Begin => "the transaction begun and the devices' turns taken",
            Phase::Apply => "the mutations applied, with the held writes sent ahead meanwhile",
            Phase::Flush => "the held writes left sent",
            Phase::Record => "the results recorded",
            Phase::Log => "the change log written",
            Phase::Commit => "the commit",
        }
    }
}

/// The clock of one transaction's phases: each lap adds the time since the last to a phase.
struct Laps<'a> {
    metrics: &'a crate::Metrics,
    last: std::time::Instant,
}

impl<'a> Laps<'a> {
    fn start(metrics: &'a crate::Metrics) -> Self {
        crate::Metrics::inc(&metrics.push_transactions);
        Laps {
            metrics,
            last: std::time::Instant::now(),
        }
    }

    fn lap(&mut self, phase: Phase) {
        let now = std::time::Instant::now();
        let us = now.duration_since(self.last).as_micros() as u64;
        self.metrics.push_phase_us[phase as usize]
            .fetch_add(us, std::sync::atomic::Ordering::Relaxed);
        self.last = now;
    }
}

async fn stored<C: ConnectionTrait>(
    c: &C,
    device: &str,
    seq: i64,
) -> Result<Option<PushResult>, CoreError> {
    let row = sql::one(
        c,
        "SELECT mutation_id, status, result FROM push_results WHERE device_id = ? AND seq = ?",
        vec![device.into(), seq.into()],
    )
    .await?;
    Ok(match row {
        Some(r) => Some(PushResult {
            seq,
            mutation_id: r.try_get("", "mutation_id")?,
            status: r.try_get("", "status")?,
            duplicate: true,
            result: serde_json::from_str(&r.try_get::<String>("", "result")?)
                .unwrap_or(Value::Null),
        }),
        None => None,
    })
}

/// Apply a batch: one transaction for the whole batch, the results recorded and the change
/// log written once at the end. First with its inserts held back and sent together
/// ([`Deferred`]); when that cannot be trusted (a statement failed, or a refused mutation had
/// already written something) the transaction is rolled back and the batch applied again
/// carefully, each mutation in a savepoint of its own (so each is applied or not at all).
/// A failure that is not a mutation's fault (the database) rolls the whole batch back and
/// the device sends it again. When another delivery of the same batch committed first (its
/// results are recorded under the same (device, sequence)), this one is rolled back and
/// answered from what that one recorded.
pub async fn push(
    db: &DatabaseConnection,
    metrics: &crate::Metrics,
    device: &Device,
    req: PushRequest,
    lang: Lang,
    now_ms: i64,
) -> Result<PushResponse, CoreError> {
    check_request(&req)?;
    let mut muts = req.mutations;
    muts.sort_by_key(|m| m.seq);
    let mut careful = false;
    let mut raced = false;
    loop {
        match push_once(db, metrics, device, &muts, lang, now_ms, careful).await {
            Ok(r) => return Ok(r),
            Err(Recorded::Careful) if !careful => careful = true,
            Err(Recorded::Before) if !raced => raced = true,
            Err(Recorded::Careful | Recorded::Before) => {
                return Err(CoreError::new(Code::Database))
            }
            Err(Recorded::Failed(e)) => return Err(e),
        }
    }
}

/// The refusals of a whole push, before anything is applied or recorded ([`push`] and
/// [`Combiner::push`] check them first): the device keeps
/// every mutation in its outbox and shows why. A batch larger than the server takes; a mutation
/// made by a newer version of the app than the server's schema (the devices were updated
/// before the city server): recorded as rejected, it would be lost for good, though the
/// server only needs updating.
pub fn check_request(req: &PushRequest) -> Result<(), CoreError> {
    if req.mutations.len() > MAX_MUTATIONS {
        return Err(CoreError::invalid(
            "mutations",
            "一次最多推送5000条",
            "at most 5,000 mutations per push",
        ));
    }
    if let Some(m) = req
        .mutations
        .iter()
        .find(|m| m.schema_version > SCHEMA_VERSION)
    {
        return Err(CoreError::invalid(
            "schema_version",
            "城市服务器的软件比本机的旧，请联系管理员更新服务器；未同步的数据会保留在本机",
            "the city server is older than this app; ask its administrator to update it \
             (unsynced changes stay on this device)",
        )
        .with("got", m.schema_version)
        .with("server", SCHEMA_VERSION));
    }
    Ok(())
}

/// The most mutations one push may carry.
pub const MAX_MUTATIONS: usize = 5_000;

/// Why a batch did not go through.
enum Recorded {
    /// Another delivery recorded results for the same sequences first.
    Before,
    /// The batch's held-back writes cannot be trusted: apply it again, carefully.
    Careful,
    Failed(CoreError),
}

impl<E: Into<CoreError>> From<E> for Recorded {
    fn from(e: E) -> Self {
        Recorded::Failed(e.into())
    }
}

async fn push_once(
    db: &DatabaseConnection,
    metrics: &crate::Metrics,
    device: &Device,
    muts: &[PushMutation],
    lang: Lang,
    now_ms: i64,
    careful: bool,
) -> Result<PushResponse, Recorded> {
    let mut answers = apply_together(db, metrics, &[(device, muts, lang)], now_ms, careful).await?;
    answers
        .pop()
        .ok_or(Recorded::Failed(CoreError::new(Code::Database)))
}

/// Batches (of one device or several) in one transaction, in the order given, with one
/// change log: their inserts (audit entries included) held back together, the actors and
/// reference data loaded once for all of them, the devices' next sequences read in one query,
/// their results written together at the end.
async fn apply_together(
    db: &DatabaseConnection,
    metrics: &crate::Metrics,
    batches: &[(&Device, &[PushMutation], Lang)],
    now_ms: i64,
    careful: bool,
) -> Result<Vec<PushResponse>, Recorded> {
    let mut laps = Laps::start(metrics);
    let txn = timebank_core::db::begin_write(db).await?;
    take_turns(&txn, batches.iter().map(|b| b.0.id.as_str())).await?;
    laps.lap(Phase::Begin);
    let queue = crate::changes::queue_of(&txn).await?;
    let deferred = Deferred::new(&txn);
    let mut shared = Shared {
        actors: HashMap::new(),
        memo: std::sync::Arc::new(service::Memo::default()),
        savepoint: false,
        next: next_seqs(&txn, batches.iter().map(|b| b.0.id.as_str())).await?,
    };
    let mut answers: Vec<PushResponse> = Vec::with_capacity(batches.len());
    let mut fresh = Vec::with_capacity(batches.len());
    for (device, muts, lang) in batches {
        let before = batches
            .iter()
            .zip(&answers)
            .filter(|((d, _, _), _)| d.id == device.id)
            .map(|(_, a)| a);
        let (answer, applied) = apply_batch(
            &txn,
            &deferred,
            before,
            device,
            muts,
            *lang,
            now_ms,
            careful,
            &mut shared,
        )
        .await?;
        answers.push(answer);
        fresh.push(applied);
    }
    laps.lap(Phase::Apply);
    let flushed = deferred.flush().await;
    laps.lap(Phase::Flush);
    if flushed.is_err() {
        return Err(Recorded::Careful);
    }
    drop(deferred); // flushed: nothing held or on its way
    record_results(&txn, batches, &answers, &fresh, now_ms).await?;
    laps.lap(Phase::Record);
    crate::changes::log_changes_of(&txn, now_ms, queue).await?;
    laps.lap(Phase::Log);
    txn.commit().await?;
    laps.lap(Phase::Commit);
    let stored: usize = fresh.iter().map(Vec::len).sum();
    metrics
        .push_results_stored
        .fetch_add(stored as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(answers)
}

/// The sequence each device's next mutation must have, in one query.
async fn next_seqs<'a>(
    txn: &DatabaseTransaction,
    devices: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, i64>, CoreError> {
    let ids: std::collections::BTreeSet<&str> = devices.into_iter().collect();
    let mut next: HashMap<String, i64> = ids.iter().map(|d| ((*d).to_owned(), 1)).collect();
    let marks = vec!["?"; ids.len()].join(", ");
    let rows = sql::all(
        txn,
        &format!("SELECT device_id, MAX(seq) AS seq FROM push_results WHERE device_id IN ({marks}) GROUP BY device_id"),
        ids.iter().map(|d| (*d).into()).collect(),
    )
    .await?;
    for r in rows {
        let (device, seq): (String, i64) = (r.try_get("", "device_id")?, r.try_get("", "seq")?);
        next.insert(device, seq + 1);
    }
    Ok(next)
}

/// Record the results of the mutations this delivery applied or refused (`fresh`: for each
/// batch, its mutations that have a new result, in the order of its results), a hundred to a
/// statement. Another delivery having recorded one first ends the transaction: it is rolled
/// back and answered from what that one recorded.
async fn record_results(
    txn: &DatabaseTransaction,
    batches: &[(&Device, &[PushMutation], Lang)],
    answers: &[PushResponse],
    fresh: &[Vec<&PushMutation>],
    now_ms: i64,
) -> Result<(), Recorded> {
    let rows: Vec<(&str, &PushMutation, &PushResult)> = batches
        .iter()
        .zip(answers)
        .zip(fresh)
        .flat_map(|(((device, _, _), answer), applied)| {
            answer
                .results
                .iter()
                .filter(|r| !r.duplicate)
                .zip(applied)
                .map(|(r, m)| (device.id.as_str(), *m, r))
        })
        .collect();
    for chunk in rows.chunks(100) {
        let marks = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut vals = Vec::with_capacity(chunk.len() * 7);
        for (device, m, r) in chunk {
            vals.extend([
                (*device).into(),
                m.seq.into(),
                m.id.clone().into(),
                m.name.clone().into(),
                r.status.clone().into(),
                r.result.to_string().into(),
                now_ms.into(),
            ]);
        }
        let sql = format!("INSERT INTO push_results (device_id, seq, mutation_id, name, status, result, applied_at) VALUES {marks}");
        let insert = sql::stmt(txn.get_database_backend(), &sql, vals);
        if let Err(e) = txn.execute_raw(insert).await {
            if service::is_unique_violation(&e) {
                return Err(Recorded::Before);
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// A device's batches one after the other on PostgreSQL, also when two are on their way at
/// once (possibly to two server processes): each batch reads the sequence the one before
/// left. Several devices' locks are taken in the order of their ids, so that two groups of
/// batches never wait for each other crosswise. On SQLite pushes take turns anyway
/// ([`Combiner`], and one writer).
async fn take_turns<'a>(
    txn: &DatabaseTransaction,
    devices: impl IntoIterator<Item = &'a str>,
) -> Result<(), CoreError> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let ids: std::collections::BTreeSet<&str> = devices.into_iter().collect();
    for id in ids {
        sql::exec(
            txn,
            "SELECT pg_advisory_xact_lock(727275, hashtext(?))",
            vec![id.into()],
        )
        .await?;
    }
    Ok(())
}

/// Apply one device's batch in the caller's transaction (its inserts held back in
/// `deferred`, or, `careful`, each mutation in a savepoint of its own). Returns its answer and
/// the mutations that got a new result, which the caller records with the other batches'
/// (`before`: the answers to this device's batches applied before it in this transaction),
/// before it logs the changes and commits.
#[allow(clippy::too_many_arguments)]
async fn apply_batch<'m>(
    txn: &DatabaseTransaction,
    deferred: &Deferred<'_>,
    before: impl Iterator<Item = &PushResponse> + Clone,
    device: &Device,
    muts: &'m [PushMutation],
    lang: Lang,
    now_ms: i64,
    careful: bool,
    shared: &mut Shared,
) -> Result<(PushResponse, Vec<&'m PushMutation>), Recorded> {
    let mut next = shared.next.get(&device.id).copied().unwrap_or(1);
    let mut results = Vec::with_capacity(muts.len());
    let mut fresh = Vec::with_capacity(muts.len());
    for m in muts {
        if m.seq < next {
            // Answered before: by a batch before this one in the transaction (a delivery
            // repeated while the first was waiting), or as recorded.
            let earlier = before
                .clone()
                .flat_map(|a| &a.results)
                .find(|r| r.seq == m.seq && !r.duplicate);
            let answer = match earlier {
                Some(r) => Some(PushResult {
                    duplicate: true,
                    ..r.clone()
                }),
                None => stored(deferred, &device.id, m.seq).await?,
            };
            let Some(answer) = answer else { continue };
            // Another mutation answered under this sequence: the device numbers again what the
            // city has (it was restored from a backup). Nothing after it is applied: the
            // device sends them again, numbered after `next_seq`, in their order
            // (`sync::push_all`).
            let reused = answer.mutation_id != m.id;
            results.push(answer);
            if reused {
                break;
            }
            continue;
        }
        if m.seq > next {
            break; // a gap: the device resends from `next_seq`
        }
        let batch = Batch {
            actors: &mut shared.actors,
            memo: &shared.memo,
            savepoint: &mut shared.savepoint,
        };
        let r = if careful {
            apply_one(txn, Way::Savepoints(txn), device, m, lang, now_ms, batch).await?
        } else {
            let r = apply_one(
                deferred,
                Way::Deferred(deferred),
                device,
                m,
                lang,
                now_ms,
                batch,
            )
            .await;
            // Whatever failed, when a statement did the careful pass decides.
            if deferred.failed() {
                return Err(Recorded::Careful);
            }
            r?
        };
        results.push(r);
        fresh.push(m);
        next += 1;
    }
    shared.next.insert(device.id.clone(), next);
    Ok((
        PushResponse {
            results,
            next_seq: next,
            carefully: careful,
        },
        fresh,
    ))
}

/// A batch waiting for its turn to be applied, and where its answer goes.
struct Job {
    device: Device,
    req: PushRequest,
    lang: Lang,
    reply: tokio::sync::oneshot::Sender<Result<PushResponse, CoreError>>,
}

/// Group commit of pushes: batches that arrive while another is being applied wait, and the
/// next to have its turn applies all that wait, each device's in sequence, in one
/// transaction with one change log, instead of one transaction each. A hundred devices
/// pushing a hundred mutations each then cost about what one device pushing ten thousand
/// does (the transaction's fixed costs, the log and the commit, are paid once per group).
/// When anything in the group goes wrong (a batch needs the careful pass, another delivery
/// recorded first, the database failed) the group is rolled back and each batch is applied
/// on its own, as [`push`] does, so no batch is answered differently for having shared a
/// transaction. On SQLite one group is applied at a time (there is one writer); on PostgreSQL
/// as many as the machine has cores, side by side, so that one group's statements run in the
/// database while another's mutations are worked out here (and several processes' groups
/// share the database too). A device's batches stay in sequence throughout ([`take_turns`]).
pub struct Combiner {
    waiting: std::sync::Mutex<Vec<Job>>,
    turns: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The most mutations applied in one group's transaction.
const GROUP_MUTATIONS: usize = 2_000;

impl Combiner {
    /// A combiner applying at most `at_once` groups at the same time.
    pub fn new(at_once: usize) -> Self {
        Combiner {
            waiting: Default::default(),
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1))),
        }
    }

    /// Apply `req` from `device`, in a group with the batches that wait with it.
    pub async fn push(
        &self,
        db: &DatabaseConnection,
        metrics: &std::sync::Arc<crate::Metrics>,
        device: &Device,
        req: PushRequest,
        lang: Lang,
    ) -> Result<PushResponse, CoreError> {
        check_request(&req)?;
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Job {
                device: device.clone(),
                req,
                lang,
                reply,
            });
        loop {
            // Answered as soon as the group this batch was in has been applied (not only once
            // the group after it has been too: waiting for a turn first held a device's answer
            // back while its next batch was applied, so it never had two on their way).
            let turn = tokio::select! {
                biased;
                r = &mut answer => return r.unwrap_or_else(|_| Err(CoreError::new(Code::Database))),
                t = self.turns.clone().acquire_owned() => t,
            };
            let Ok(turn) = turn else {
                break; // never closed; were it, the answer below says so
            };
            // Answered meanwhile, or the group was full and this batch still waits.
            match answer.try_recv() {
                Ok(r) => return r,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            let jobs = self.take_group();
            if jobs.is_empty() {
                break;
            }
            // Applied apart from this request, so that a device hanging up does not cut the
            // group (and the other devices' answers) short.
            let (db, metrics) = (db.clone(), metrics.clone());
            let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
            let group = async move {
                apply_group(&db, &metrics, jobs, service::now_ms()).await;
                drop(turn);
            };
            // On SQLite the group's statements are answered by the driver's thread within
            // microseconds: waited for without sleeping (crate::spin). On PostgreSQL the
            // cores are better left to the database.
            let group = if sqlite {
                tokio::spawn(crate::spin::Spin::new(group))
            } else {
                tokio::spawn(group)
            };
            if group.await.is_err() {
                break; // the task panicked: the answers' senders are gone, said below
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(CoreError::new(Code::Database)))
    }

    /// How many batches wait for their turn (not yet in a group).
    pub fn waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The waiting batches, oldest first, up to [`GROUP_MUTATIONS`] mutations (at least one
    /// batch).
    fn take_group(&self) -> Vec<Job> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        let mut take = 0;
        for j in waiting.iter() {
            if take > 0 && n + j.req.mutations.len() > GROUP_MUTATIONS {
                break;
            }
            n += j.req.mutations.len();
            take += 1;
        }
        waiting.drain(..take).collect()
    }
}

/// Apply a group of batches in one transaction and answer each; see [`Combiner`].
async fn apply_group(
    db: &DatabaseConnection,
    metrics: &crate::Metrics,
    mut jobs: Vec<Job>,
    now_ms: i64,
) {
    for j in &mut jobs {
        j.req.mutations.sort_by_key(|m| m.seq);
    }
    // In the order they arrived, but a device's batches in sequence, also when the later one
    // arrived first (a device keeps two on their way).
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        arrived.entry(j.device.id.clone()).or_insert(i);
    }
    jobs.sort_by_key(|j| {
        (
            arrived.get(&j.device.id).copied().unwrap_or(0),
            j.req.mutations.first().map_or(0, |m| m.seq),
        )
    });
    if jobs.len() > 1 {
        let batches: Vec<_> = jobs
            .iter()
            .map(|j| (&j.device, j.req.mutations.as_slice(), j.lang))
            .collect();
        match apply_together(db, metrics, &batches, now_ms, false).await {
            Ok(answers) => {
                crate::Metrics::inc(&metrics.push_groups);
                for (j, a) in jobs.into_iter().zip(answers) {
                    let _ = j.reply.send(Ok(a));
                }
                return;
            }
            Err(_) => crate::Metrics::inc(&metrics.push_groups_split),
        }
    }
    for j in jobs {
        let r = push(db, metrics, &j.device, j.req, j.lang, now_ms).await;
        let _ = j.reply.send(r);
    }
}

fn reject_reason(m: &PushMutation) -> Option<CoreError> {
    // (A newer version than the server's refuses the whole push: `check_request`.)
    if m.schema_version < SCHEMA_VERSION - 1 {
        return Some(
            CoreError::invalid(
                "schema_version",
                "数据版本不受支持，请更新软件",
                "schema version not supported; update the app",
            )
            .with("got", m.schema_version),
        );
    }
    if Hlc::decode(&m.hlc).is_none() {
        return Some(CoreError::invalid(
            "hlc",
            "时间戳格式错误",
            "malformed clock",
        ));
    }
    if uuid::Uuid::parse_str(&m.id).is_err() {
        return Some(CoreError::invalid(
            "id",
            "编号格式错误",
            "the mutation id is not a UUID",
        ));
    }
    None
}

/// What the batches of one transaction share: the actors and reference data loaded (see
/// `service::Memo`), whether the savepoint `m` is open,
/// and the sequence each device's next mutation must have.
struct Shared {
    actors: HashMap<String, Actor>,
    memo: std::sync::Arc<service::Memo>,
    savepoint: bool,
    next: HashMap<String, i64>,
}

/// What one mutation uses of [`Shared`].
struct Batch<'a> {
    actors: &'a mut HashMap<String, Actor>,
    memo: &'a std::sync::Arc<service::Memo>,
    savepoint: &'a mut bool,
}

/// Start the mutation's savepoint `m`. The previous mutation's is released in the same
/// statement (a round trip to the database per mutation, not two).
async fn savepoint(txn: &DatabaseTransaction, open: &mut bool) -> Result<(), CoreError> {
    let sql = if *open {
        "RELEASE SAVEPOINT m; SAVEPOINT m"
    } else {
        "SAVEPOINT m"
    };
    txn.execute_unprepared(sql).await?;
    *open = true;
    Ok(())
}

/// Undo what the mutation wrote since its savepoint (which stays open).
async fn undo(txn: &DatabaseTransaction) -> Result<(), CoreError> {
    txn.execute_unprepared("ROLLBACK TO SAVEPOINT m").await?;
    Ok(())
}

/// How a mutation is applied and undone: in a savepoint of the batch's transaction, or with
/// its inserts held back (undone by dropping them).
#[derive(Clone, Copy)]
enum Way<'a, 'b> {
    Savepoints(&'a DatabaseTransaction),
    Deferred(&'a Deferred<'b>),
}

/// Apply one mutation (its result is recorded with the batch's).
async fn apply_one<C: ConnectionTrait>(
    c: &C,
    way: Way<'_, '_>,
    device: &Device,
    m: &PushMutation,
    lang: Lang,
    now_ms: i64,
    batch: Batch<'_>,
) -> Result<PushResult, Recorded> {
    match way {
        Way::Savepoints(txn) => savepoint(txn, batch.savepoint).await?,
        Way::Deferred(d) => d.begin_mutation(),
    }
    let parsed: Result<Command, CoreError> =
        Command::from_parts(&m.name, m.args.clone()).map_err(|e| {
            CoreError::invalid(
                "mutation",
                "无法识别的操作",
                "unknown or malformed mutation",
            )
            .with("detail", e)
        });
    let outcome: Result<(), CoreError> = match (reject_reason(m), parsed) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(cmd)) => {
            let device_at =
                m.at.or_else(|| Hlc::decode(&m.hlc).map(|h| h.millis))
                    .unwrap_or(now_ms);
            let at = device_at.min(now_ms); // clocks ahead of the server's are clamped
            let ctx = Ctx::replaying(&m.actor_id, &device.id, at, &m.id)
                .with_hlc(&m.hlc)
                .with_device_time(device_at)
                .with_memo(batch.memo.clone());
            let res = match scoped_actor(c, device, &m.actor_id, batch.actors).await {
                Ok(actor) => service::execute_as(c, &ctx, actor.as_ref(), &cmd).await,
                Err(e) => Err(e),
            };
            if !cmd.leaves_actors_unchanged() {
                batch.actors.clear();
                batch.memo.clear();
            }
            match res {
                Ok(out) => {
                    let result = serde_json::to_value(&out).unwrap_or(Value::Null);
                    return Ok(PushResult {
                        seq: m.seq,
                        mutation_id: m.id.clone(),
                        status: "applied".into(),
                        duplicate: false,
                        result,
                    });
                }
                Err(e) => {
                    match way {
                        Way::Savepoints(txn) => undo(txn).await?,
                        // A failed statement may be what refused it: decide carefully.
                        Way::Deferred(d) if d.failed() || e.code == Code::Database => {
                            return Err(Recorded::Careful)
                        }
                        Way::Deferred(d) => {
                            if !d.discard_mutation() {
                                return Err(Recorded::Careful);
                            }
                        }
                    }
                    Err(e)
                }
            }
        }
    };
    let Err(e) = outcome else {
        unreachable!("applied mutations returned above")
    };
    if e.code == Code::Database {
        return Err(e.into()); // not the mutation's fault: the device retries
    }
    let wire = e.to_wire(lang);
    // The member who made it is told why, in the inbox (the record of every notification).
    let actor_exists = sql::scalar_i64(
        c,
        "SELECT COUNT(*) FROM members WHERE id = ?",
        vec![m.actor_id.clone().into()],
    )
    .await?
        > 0;
    if actor_exists {
        let ctx = Ctx::new(&m.actor_id, &device.id, now_ms);
        service::notify(c, &ctx, &m.actor_id, "sync_rejected", json!({"mutation": m.name, "code": e.code, "message_zh": e.message(Lang::Zh), "message_en": e.message(Lang::En)})).await?;
    }
    Ok(PushResult {
        seq: m.seq,
        mutation_id: m.id.clone(),
        status: "rejected".into(),
        duplicate: false,
        result: wire,
    })
}

/// The actor of a mutation, once its scope is checked, with no more powers than the device's
/// enrolment grants (see [`Actor::confined`]): from this batch's cache, or loaded and kept
/// (None when loading fails: the command's own load then gives the same error as ever).
async fn scoped_actor<C: sea_orm::ConnectionTrait>(
    c: &C,
    device: &Device,
    actor_id: &str,
    actors: &mut HashMap<String, Actor>,
) -> Result<Option<Actor>, CoreError> {
    if let Some(a) = actors.get(actor_id) {
        if device.communities.contains(&a.member.home_community_id) {
            return Ok(Some(a.clone().confined(&device.grant())));
        }
        return Err(CoreError::new(Code::OutOfScope).with("community", &a.member.home_community_id));
    }
    check_scope(c, device, actor_id).await?;
    match service::load_actor(c, actor_id).await {
        Ok(a) => {
            actors.insert(actor_id.to_owned(), a.clone());
            Ok(Some(a.confined(&device.grant())))
        }
        Err(_) => Ok(None),
    }
}

/// A device acts only for members of the communities its enrolment grants.
async fn check_scope<C: sea_orm::ConnectionTrait>(
    c: &C,
    device: &Device,
    actor_id: &str,
) -> Result<(), CoreError> {
    let actor = service::get_member(c, actor_id).await?;
    if device.communities.contains(&actor.home_community_id) {
        Ok(())
    } else {
        Err(CoreError::new(Code::OutOfScope).with("community", &actor.home_community_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timebank_core::service::admin::Bootstrap;

    fn register(seq: i64, actor: &str, community: &str) -> PushMutation {
        PushMutation {
            id: uuid::Uuid::now_v7().to_string(),
            seq,
            name: "register_member".into(),
            args: json!({"member_id": format!("m{seq}"), "name": "张桂英", "phone": format!("1381111{seq:04}"), "date_of_birth": "1945-03-02", "home_community_id": community, "address": "3幢", "roles": ["resident"], "hardship": false, "center_id": null, "volunteer": null}),
            hlc: Hlc {
                millis: service::now_ms() - 1000,
                counter: seq as u32,
                node: "dev".into(),
            }
            .encode(),
            schema_version: SCHEMA_VERSION,
            actor_id: actor.into(),
            at: None,
        }
    }

    /// A city server's database on SQLite in `dir` (several connections, as a running server
    /// has), its city bootstrapped at `now`, and a desk of its one community.
    async fn city(dir: &std::path::Path, now: i64) -> (DatabaseConnection, String, String, Device) {
        let db = timebank_core::db::connect_tuned(
            &timebank_core::db::sqlite_url(&dir.join("city.db")),
            timebank_core::db::Tuning::SERVER,
        )
        .await
        .expect("the city database");
        let boot = crate::init_city(
            &db,
            &Bootstrap {
                city: ("杭州市".into(), "Hangzhou".into()),
                district: ("西湖区".into(), "Xihu".into()),
                subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
                communities: vec![("府苑新村".into(), "Fuyuan".into())],
                center: ("蒋村街道社区服务中心".into(), "center".into()),
                admin_name: "周建华".into(),
                admin_phone: "13900000001".into(),
                admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 5, 4).expect("a date"),
                programme_name: "test".into(),
                rules: Default::default(),
            },
            now,
        )
        .await
        .expect("the city");
        let device = Device {
            id: "desk-1".into(),
            center_id: boot.center_id.clone(),
            role: "center".into(),
            communities: boot.community_ids.clone(),
        };
        (db, boot.admin_id, boot.community_ids[0].clone(), device)
    }

    /// A mutation of the desk in the tests, by `actor`.
    fn mutation(seq: i64, actor: &str, name: &str, args: serde_json::Value) -> PushMutation {
        PushMutation {
            name: name.into(),
            args,
            ..register(seq, actor, "")
        }
    }

    /// The whole change log, the bootstrap's entries included: (partition, sequence, table, key,
    /// operation, row).
    async fn log_of(db: &DatabaseConnection) -> Vec<(String, i64, String, String, String, String)> {
        sql::all(
            db,
            "SELECT community_id, seq, tbl, pk, op, COALESCE(row_json, '') AS row_json FROM change_log \
             ORDER BY community_id, seq",
            vec![],
        )
        .await
        .expect("the change log")
        .iter()
        .map(|r| {
            (
                r.try_get("", "community_id").expect("partition"),
                r.try_get("", "seq").expect("sequence"),
                r.try_get("", "tbl").expect("table"),
                r.try_get("", "pk").expect("key"),
                r.try_get("", "op").expect("operation"),
                r.try_get("", "row_json").expect("row"),
            )
        })
        .collect()
    }

    /// `text` with every UUID replaced by its number in `seen` (in the order first seen), so
    /// that two databases made alike compare alike.
    fn canon(text: &str, seen: &mut HashMap<String, usize>) -> String {
        let shape = |w: &[u8]| {
            w.len() == 36
                && w.iter().enumerate().all(|(i, b)| match i {
                    8 | 13 | 18 | 23 => *b == b'-',
                    _ => b.is_ascii_hexdigit(),
                })
        };
        let (bytes, mut out, mut i) = (text.as_bytes(), String::new(), 0);
        while i < bytes.len() {
            if i + 36 <= bytes.len() && shape(&bytes[i..i + 36]) {
                let n = seen.len();
                let n = *seen.entry(text[i..i + 36].to_owned()).or_insert(n);
                out.push_str(&format!("#{n}"));
                i += 36;
            } else {
                let c = text[i..].chars().next().expect("a character");
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    /// On SQLite a push through the server's writer queues its rows in the connection's own
    /// temporary queue, not the database's; its change log is the one the database's triggers
    /// give the same push through another connection, row for row, and nothing of the switch
    /// outlives the push: the other connections' writes are still logged.
    #[tokio::test]
    async fn a_push_through_the_writer_logs_what_the_database_triggers_log() {
        let now = service::now_ms();
        let (dir_a, dir_b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (db_a, admin_a, community_a, device_a) = city(dir_a.path(), now).await;
        let (db_b, admin_b, community_b, device_b) = city(dir_b.path(), now).await;
        let (a, b) = (
            crate::AppState::open(db_a).await.expect("server a"),
            crate::AppState::open(db_b).await.expect("server b"),
        );
        // Which queue each connection's transactions use.
        for (db, own) in [(&a.writer, true), (&a.db, false)] {
            let txn = timebank_core::db::begin_write(db)
                .await
                .expect("a transaction");
            let queue = crate::changes::queue_of(&txn).await.expect("a queue");
            assert_eq!(queue == crate::changes::Queue::Connection, own, "{queue:?}");
        }
        let batch = |admin: &str, community: &str| -> Vec<PushMutation> {
            vec![
                register(1, admin, community),
                register(2, admin, community),
                // Refused (the phone is taken): its held rows are dropped.
                PushMutation {
                    args: json!({"member_id": "m9", "name": "张桂英", "phone": "13811110001", "date_of_birth": "1945-03-02", "home_community_id": community, "address": "3幢", "roles": ["resident"], "hardship": false, "center_id": null, "volunteer": null}),
                    ..register(3, admin, community)
                },
                mutation(
                    4,
                    admin,
                    "set_hardship",
                    json!({"member_id": "m1", "hardship": true}),
                ),
            ]
        };
        let (muts_a, muts_b) = (batch(&admin_a, &community_a), batch(&admin_b, &community_b));
        // The refused registration makes the careful pass apply the batch again: both queues
        // are rolled back with its first try.
        let on_a = push(
            &a.writer,
            &a.metrics,
            &device_a,
            PushRequest { mutations: muts_a },
            Lang::En,
            now,
        )
        .await
        .expect("applied through the writer");
        let on_b = push(
            &b.db,
            &b.metrics,
            &device_b,
            PushRequest { mutations: muts_b },
            Lang::En,
            now,
        )
        .await
        .expect("applied through the pool");
        let statuses = |r: &PushResponse| {
            r.results
                .iter()
                .map(|r| r.status.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            statuses(&on_a),
            ["applied", "applied", "rejected", "applied"]
        );
        assert_eq!(statuses(&on_a), statuses(&on_b));
        assert!(
            on_a.carefully && on_b.carefully,
            "both took the careful pass"
        );
        let (log_a, log_b) = (log_of(&a.db).await, log_of(&b.db).await);
        assert_eq!(log_a.len(), log_b.len());
        let (mut ids_a, mut ids_b) = (HashMap::new(), HashMap::new());
        for (x, y) in log_a.iter().zip(&log_b) {
            // The times a row was written at are the clock's, not the push's.
            let line = |e: &(String, i64, String, String, String, String),
                        ids: &mut HashMap<String, usize>| {
                let mut row: serde_json::Value = serde_json::from_str(&e.5).unwrap_or_default();
                if let Some(cols) = row.as_object_mut() {
                    cols.retain(|k, _| !k.ends_with("_at"));
                }
                format!(
                    "{} {} {} {} {} {}",
                    canon(&e.0, ids),
                    e.1,
                    e.2,
                    canon(&e.3, ids),
                    e.4,
                    canon(&row.to_string(), ids)
                )
            };
            assert_eq!(line(x, &mut ids_a), line(y, &mut ids_b));
        }
        // The push is in it: both residents, the second write of the first (its hardship)
        // logged as what the row became, and not the refused one.
        let member = |pk: &str| {
            log_a
                .iter()
                .filter(|e| e.2 == "members" && e.3 == pk)
                .count()
        };
        assert_eq!((member("m1"), member("m2"), member("m9")), (1, 1, 0));
        assert!(
            log_a
                .iter()
                .any(|e| e.3 == "m1" && e.5.contains(r#""hardship":1"#)),
            "{log_a:?}"
        );
        // Nothing of the switch is left: no mark, both queues empty.
        let count = |db: &DatabaseConnection, q: &'static str| {
            let db = db.clone();
            async move { sql::scalar_i64(&db, q, vec![]).await.expect("a count") }
        };
        for db in [&a.writer, &a.db] {
            assert_eq!(count(db, "SELECT COUNT(*) FROM change_queue").await, 0);
            let mark = format!(
                "SELECT COUNT(*) FROM device_settings WHERE key = '{}'",
                timebank_core::sync::OWN_CAPTURE
            );
            assert_eq!(
                sql::scalar_i64(db, &mark, vec![]).await.expect("a count"),
                0
            );
        }
        assert_eq!(
            count(&a.writer, "SELECT COUNT(*) FROM temp.change_capture").await,
            0
        );
        // A later push through another connection is still logged, by the database's triggers.
        push(
            &a.db,
            &a.metrics,
            &device_a,
            PushRequest {
                mutations: vec![register(5, &admin_a, &community_a)],
            },
            Lang::En,
            now,
        )
        .await
        .expect("applied through the pool");
        assert_eq!(
            log_of(&a.db).await.iter().filter(|e| e.3 == "m5").count(),
            1
        );
    }

    /// A retry that reaches the server while the first delivery waits makes one group with it:
    /// the second is answered with the first's results, marked as repeated, and nothing is
    /// applied or recorded twice.
    #[tokio::test]
    async fn a_delivery_repeated_in_one_transaction_is_answered_from_the_first() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let now = service::now_ms();
        let (db, admin, community, device) = city(dir.path(), now).await;
        let muts: Vec<PushMutation> = (1..=3).map(|i| register(i, &admin, &community)).collect();
        let Ok(answers) = apply_together(
            &db,
            &crate::Metrics::default(),
            &[(&device, &muts, Lang::En), (&device, &muts, Lang::En)],
            now,
            false,
        )
        .await
        else {
            panic!("the group was not applied");
        };
        let (first, second) = (&answers[0], &answers[1]);
        assert_eq!((first.next_seq, second.next_seq), (4, 4));
        assert_eq!(first.results.len(), 3);
        assert!(first
            .results
            .iter()
            .all(|r| r.status == "applied" && !r.duplicate));
        assert_eq!(second.results.len(), 3);
        for (a, b) in first.results.iter().zip(&second.results) {
            assert!(b.duplicate, "{b:?}");
            assert_eq!(
                (&a.mutation_id, &a.status, &a.result),
                (&b.mutation_id, &b.status, &b.result)
            );
        }
        let count = |q: &'static str| {
            let db = db.clone();
            async move { sql::scalar_i64(&db, q, vec![]).await.expect("a count") }
        };
        assert_eq!(count("SELECT COUNT(*) FROM push_results").await, 3);
        assert_eq!(
            count("SELECT COUNT(*) FROM members WHERE id LIKE 'm%'").await,
            3
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM audit_log WHERE action = 'register_member'").await,
            3
        );
    }
}
