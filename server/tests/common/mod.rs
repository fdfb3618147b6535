//! Shared set-up of the sync tests that run devices against a city server over loopback HTTP.
#![allow(dead_code, clippy::unwrap_used)]
use sea_orm::DatabaseConnection;
use timebank_core::domain::{Role, Rules};
use timebank_core::service::admin::Bootstrapped;
use timebank_core::service::command::*;
use timebank_core::sync::{self, http::Http, Transport};
use timebank_core::{db, sql, Result};

pub fn pg_admin() -> String {
    std::env::var("TIMEBANK_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A city server on loopback, on SQLite in a temporary directory or on a fresh PostgreSQL
/// database, bootstrapped with the given communities of one center.
pub struct City {
    pub db: DatabaseConnection,
    pub boot: Bootstrapped,
    pub base: String,
    pub dir: tempfile::TempDir,
    /// The city database's URL (to open a connection of a test's own).
    pub url: String,
    /// The city's database on PostgreSQL, dropped with the city.
    pg: Option<db::ScratchDatabase>,
    addr: std::net::SocketAddr,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

/// Serve `city` on `listener` until the returned sender fires. The state is opened before
/// this returns (opening installs the capture triggers: two servers must not do it at once).
async fn serve(
    city: &DatabaseConnection,
    listener: tokio::net::TcpListener,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = timebank_server::AppState::open(city.clone()).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = timebank_server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    (tx, task)
}

impl City {
    /// None when PostgreSQL is asked for and TIMEBANK_SKIP_PG=1.
    pub async fn start(postgres: bool, communities: &[&str], rules: Rules) -> Option<City> {
        Self::start_on(postgres.then(pg_admin).as_deref(), communities, rules).await
    }

    /// [`City::start`] on a new database of the PostgreSQL server that `pg_admin` (a URL of
    /// its maintenance database) reaches, or on SQLite when None.
    pub async fn start_on(
        pg_admin: Option<&str>,
        communities: &[&str],
        rules: Rules,
    ) -> Option<City> {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = if let Some(pg_admin) = pg_admin {
            if std::env::var("TIMEBANK_SKIP_PG").is_ok_and(|v| v == "1") {
                return None;
            }
            let pg = db::ScratchDatabase::create(pg_admin, "tb_sync")
                .await
                .unwrap();
            (pg.url(), Some(pg))
        } else {
            (db::sqlite_url(&dir.path().join("city.db")), None)
        };
        let city = db::connect_tuned(&url, db::Tuning::SERVER).await.unwrap();
        let boot = timebank_server::init_city(
            &city,
            &timebank_core::service::admin::Bootstrap {
                city: ("杭州市".into(), "Hangzhou".into()),
                district: ("西湖区".into(), "Xihu".into()),
                subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
                communities: communities
                    .iter()
                    .map(|c| ((*c).to_owned(), (*c).to_owned()))
                    .collect(),
                center: ("蒋村街道社区服务中心".into(), "center".into()),
                admin_name: "周建华".into(),
                admin_phone: "13900000001".into(),
                admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 5, 4).unwrap(),
                programme_name: "test".into(),
                rules,
            },
            timebank_core::service::now_ms() - 86_400_000,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(&city, listener).await;
        Some(City {
            db: city,
            boot,
            base: format!("http://{addr}"),
            dir,
            url,
            pg,
            addr,
            server: Some(server),
        })
    }

    /// Stop the server (gracefully: requests in flight finish) and start a new one on the same
    /// address and database, as after a restart of the process.
    pub async fn restart(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.await.unwrap();
        }
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.server = Some(serve(&self.db, listener).await);
    }

    /// A new center device enrolled with this city (and its first pull done).
    pub async fn device(&self, name: &str) -> DatabaseConnection {
        self.device_as(name, "center").await
    }

    /// [`City::device`] enrolled with `role` (`center` or `volunteer`).
    pub async fn device_as(&self, name: &str, role: &str) -> DatabaseConnection {
        let d = db::connect(&db::sqlite_url(&self.dir.path().join(format!("{name}.db"))))
            .await
            .unwrap();
        let code = timebank_server::auth::issue_code(
            &self.db,
            &self.boot.center_id,
            role,
            1,
            timebank_core::service::now_ms(),
        )
        .await
        .unwrap();
        timebank_core::sync::http::enrol(&d, &self.base, &code, name, &|_| {})
            .await
            .unwrap();
        d
    }

    /// The name of the city's PostgreSQL database (None on SQLite).
    pub fn pg_database(&self) -> Option<&str> {
        self.pg.as_ref().map(|pg| pg.name())
    }

    /// Stop the server, close the pool and drop the city's PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.db.close_by_ref().await.ok();
        if let Some(pg) = self.pg.take() {
            pg.drop_now().await.expect("the test's database dropped");
        }
    }
}

impl Drop for City {
    fn drop(&mut self) {
        // Reached with a database only when the test did not get to `stop` (it panicked, or
        // forgot): the server is told to stop before `pg` drops the database.
        if self.pg.is_some() {
            if let Some((stop, _task)) = self.server.take() {
                let _ = stop.send(());
            }
        }
    }
}

/// The rows of `q`, whose columns are named c0, c1, …, each as `v0|v1|…`.
pub async fn rows(db: &DatabaseConnection, q: &str) -> Vec<String> {
    let n = q.matches(" AS c").count();
    sql::all(db, q, vec![])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (0..n)
                .map(|i| {
                    let c = format!("c{i}");
                    r.try_get::<Option<String>>("", &c)
                        .ok()
                        .flatten()
                        .or_else(|| {
                            r.try_get::<Option<i64>>("", &c)
                                .ok()
                                .flatten()
                                .map(|x| x.to_string())
                        })
                        .or_else(|| {
                            r.try_get::<Option<i32>>("", &c)
                                .ok()
                                .flatten()
                                .map(|x| x.to_string())
                        })
                        .or_else(|| {
                            r.try_get::<Option<bool>>("", &c)
                                .ok()
                                .flatten()
                                .map(|x| i32::from(x).to_string())
                        })
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// Registering a resident (born 1942) or a volunteer (born 1985) of `community`.
pub fn register(id: &str, name: &str, phone: &str, community: &str, volunteer: bool) -> Command {
    Command::RegisterMember(RegisterMember {
        member_id: id.into(),
        name: name.into(),
        phone: phone.into(),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(if volunteer { 1985 } else { 1942 }, 3, 1)
            .unwrap(),
        home_community_id: community.into(),
        address: Some("5幢".into()),
        roles: if volunteer {
            vec![Role::Resident, Role::Volunteer]
        } else {
            vec![Role::Resident]
        },
        hardship: false,
        center_id: None,
        volunteer: volunteer.then(|| VolunteerProfile {
            service_fields: vec![],
            skills: String::new(),
            availability: String::new(),
        }),
    })
}

/// A one-visit order of one volunteer for `beneficiary`.
pub fn order(id: &str, beneficiary: &str) -> Command {
    Command::PostOrder(PostOrder {
        order_id: id.into(),
        beneficiary_id: beneficiary.into(),
        service_code: "meal_delivery".into(),
        description: "送午饭".into(),
        urgent: false,
        place_hint: "5幢".into(),
        address: None,
        window_start: None,
        window_end: None,
        expected_minutes: 60,
        volunteers_needed: 1,
        visits: vec![],
    })
}

/// On device `d` (its id `device`): `volunteer` accepts `order_id` at `at`, checks in a minute
/// later and checks out `minutes` after that.
pub async fn serve_visit(
    d: &DatabaseConnection,
    device: &str,
    volunteer: &str,
    order_id: &str,
    at: i64,
    minutes: i64,
    note: Option<&str>,
) {
    const MIN: i64 = 60_000;
    for (dt, cmd) in [
        (
            0,
            Command::AcceptOrder {
                order_id: order_id.into(),
            },
        ),
        (
            MIN,
            Command::CheckIn {
                visit_id: None,
                order_id: order_id.into(),
            },
        ),
        (
            MIN + minutes * MIN,
            Command::CheckOut {
                order_id: order_id.into(),
                note: note.map(str::to_owned),
                served: None,
            },
        ),
    ] {
        timebank_core::service::execute(
            d,
            &timebank_core::service::Ctx::new(volunteer, device, at + dt),
            cmd,
        )
        .await
        .unwrap();
    }
}

/// What a test's transport does differently from the city server over HTTP ([`Through`]):
/// each method passes the call to [`Intercept::http`] unless the test's type says otherwise.
#[allow(async_fn_in_trait)]
pub trait Intercept {
    /// The city server the calls go to.
    fn http(&self) -> &Http;
    async fn push(&self, token: &str, m: &[sync::Mutation]) -> Result<sync::PushResponse> {
        self.http().push(token, m).await
    }
    async fn pull(&self, token: &str, p: &str, after: i64, limit: i64) -> Result<sync::PullPage> {
        self.http().pull(token, p, after, limit).await
    }
    async fn rows(&self, token: &str, keys: &[(String, String)]) -> Result<Vec<sync::RowState>> {
        self.http().rows(token, keys).await
    }
    /// As [`sync::Transport::pushes_in_flight`] (one unless the test's type says otherwise).
    fn pushes_in_flight(&self) -> usize {
        1
    }
    /// As [`sync::Transport::push_bytes`].
    fn push_bytes(&self) -> usize {
        sync::PUSH_BYTES
    }
}

/// A test's [`Intercept`] lent to a round (the test reads what it counted afterwards).
impl<T: Intercept> Intercept for &T {
    fn http(&self) -> &Http {
        (**self).http()
    }
    async fn push(&self, token: &str, m: &[sync::Mutation]) -> Result<sync::PushResponse> {
        (**self).push(token, m).await
    }
    async fn pull(&self, token: &str, p: &str, after: i64, limit: i64) -> Result<sync::PullPage> {
        (**self).pull(token, p, after, limit).await
    }
    async fn rows(&self, token: &str, keys: &[(String, String)]) -> Result<Vec<sync::RowState>> {
        (**self).rows(token, keys).await
    }
    fn pushes_in_flight(&self) -> usize {
        (**self).pushes_in_flight()
    }
    fn push_bytes(&self) -> usize {
        (**self).push_bytes()
    }
}

/// The transport of a test's [`Intercept`]: the city server over HTTP but for what the test
/// changes. It derefs to the test's type (to read what it counted).
pub struct Through<T>(pub T);

impl<T> std::ops::Deref for Through<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Intercept> sync::Transport for Through<T> {
    async fn push(&self, token: &str, m: &[sync::Mutation]) -> Result<sync::PushResponse> {
        self.0.push(token, m).await
    }
    async fn pull(&self, token: &str, p: &str, after: i64, limit: i64) -> Result<sync::PullPage> {
        self.0.pull(token, p, after, limit).await
    }
    async fn rows(&self, token: &str, keys: &[(String, String)]) -> Result<Vec<sync::RowState>> {
        self.0.rows(token, keys).await
    }
    fn pushes_in_flight(&self) -> usize {
        self.0.pushes_in_flight()
    }
    fn push_bytes(&self) -> usize {
        self.0.push_bytes()
    }
}
