//! Arguments and commands of `timebank`.
use anyhow::{bail, Context as _, Result};
use chrono::TimeZone;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use timebank_core::domain::{
    format_minutes, ConfirmMethod, GiftPolicy, Payer, Relation, Role, Rules, Vetting,
};
use timebank_core::service::admin::Bootstrap;
use timebank_core::service::{self, command::*, members::hash_pin, new_id, Actor, Ctx};
use timebank_core::{db, read, Command, CoreError, Lang};

#[derive(Parser, Debug)]
#[command(
    name = "timebank",
    version,
    about = "时间银行 Time bank: the command line for staff IT and scripting"
)]
pub struct Cli {
    /// The device database (SQLite file).
    #[arg(
        long,
        env = "TIMEBANK_DB",
        global = true,
        default_value = "timebank.db"
    )]
    pub db: PathBuf,
    /// Act as this member (id or phone number).
    #[arg(long = "as", env = "TIMEBANK_AS", global = true)]
    pub actor: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Language of messages: zh (default) or en.
    #[arg(long, global = true, default_value = "zh", value_parser = parse_lang)]
    pub lang: Lang,
    #[command(subcommand)]
    pub cmd: Cmd,
}

fn parse_lang(s: &str) -> Result<Lang, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Initialise a device database for a center.
    Init(InitArgs),
    /// Create a database filled with realistic demo data (the database must not exist).
    Demo,
    /// Enrol this device (a new database) with a city server using a one-time code, and pull
    /// its communities.
    Enrol {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        #[arg(long, default_value = "timebank-cli")]
        name: String,
    },
    /// Sync with the city server: push the outbox, pull the changes (--watch: keep syncing).
    Sync {
        #[arg(long)]
        watch: bool,
        /// Seconds between rounds with --watch.
        #[arg(long, default_value_t = 30)]
        every: u64,
    },
    /// Online or offline, changes waiting, last sync, last problem.
    SyncStatus,
    #[command(subcommand)]
    Member(MemberCmd),
    #[command(subcommand)]
    Order(OrderCmd),
    #[command(subcommand)]
    Account(AccountCmd),
    /// Give hours to a family member.
    Gift {
        #[arg(long)]
        to: String,
        #[arg(long)]
        minutes: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
    #[command(subcommand)]
    Ledger(LedgerCmd),
    #[command(subcommand)]
    Activity(ActivityCmd),
    #[command(subcommand)]
    Feedback(FeedbackCmd),
    #[command(subcommand)]
    Safeguard(SafeguardCmd),
    #[command(subcommand)]
    Report(ReportCmd),
    #[command(subcommand)]
    Export(ExportCmd),
    /// Back up the database while it is in use.
    Backup { to: PathBuf },
    /// Restore the database from a backup (the app must be closed).
    Restore { from: PathBuf },
    #[command(subcommand)]
    Rules(RulesCmd),
    /// Live figures of this center's communities (or all with --all).
    Dashboard {
        #[arg(long)]
        all: bool,
    },
    /// The acting member's inbox.
    Inbox {
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// The audit trail (staff).
    Audit {
        #[arg(long)]
        entity: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[arg(long, default_value = "杭州市")]
    city: String,
    #[arg(long, default_value = "西湖区")]
    district: String,
    #[arg(long)]
    subdistrict: String,
    /// A community the center serves (repeat for several).
    #[arg(long = "community", required = true)]
    communities: Vec<String>,
    #[arg(long)]
    center: String,
    #[arg(long)]
    admin_name: String,
    #[arg(long)]
    admin_phone: String,
    /// YYYY-MM-DD
    #[arg(long)]
    admin_birth: chrono::NaiveDate,
    #[arg(long, default_value = "时间银行")]
    programme: String,
}

#[derive(Subcommand, Debug)]
pub enum MemberCmd {
    /// Register a member.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: String,
        /// YYYY-MM-DD
        #[arg(long)]
        birth: chrono::NaiveDate,
        /// Community name or id.
        #[arg(long)]
        community: String,
        /// Comma-separated: resident, family, volunteer, staff, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(long)]
        address: Option<String>,
        /// Volunteer service fields, comma-separated codes.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        #[arg(long, default_value = "")]
        skills: String,
        #[arg(long, default_value = "")]
        availability: String,
        /// Staff: their center id (defaults to this device's center).
        #[arg(long)]
        center: Option<String>,
    },
    /// Import residents and volunteers from CSV (all or nothing).
    Import { file: PathBuf },
    /// Record a family link: RELATIVE is MEMBER's <relation>.
    Link {
        member: String,
        relative: String,
        #[arg(long, value_enum)]
        relation: RelationArg,
    },
    /// Verify (or suspend) a volunteer.
    Verify {
        member: String,
        #[arg(long)]
        suspend: bool,
    },
    /// Set a member's PIN (4-6 digits) for confirming visits and signing in.
    Pin {
        member: String,
        #[arg(long)]
        pin: String,
    },
    /// Record or clear a hardship exception (spending under the minimum age).
    Hardship {
        member: String,
        #[arg(long)]
        clear: bool,
    },
    /// Members of a community (staff).
    List {
        #[arg(long)]
        community: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RelationArg {
    Spouse,
    Child,
    Parent,
    Grandchild,
    Grandparent,
    Other,
}

impl From<RelationArg> for Relation {
    fn from(r: RelationArg) -> Self {
        match r {
            RelationArg::Spouse => Relation::Spouse,
            RelationArg::Child => Relation::Child,
            RelationArg::Parent => Relation::Parent,
            RelationArg::Grandchild => Relation::Grandchild,
            RelationArg::Grandparent => Relation::Grandparent,
            RelationArg::Other => Relation::Other,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    /// Post a request for help (for yourself or on behalf of a resident).
    Post {
        /// The resident who needs help (defaults to the acting member).
        #[arg(long = "for")]
        beneficiary: Option<String>,
        #[arg(long)]
        service: String,
        #[arg(long)]
        description: String,
        #[arg(long)]
        urgent: bool,
        #[arg(long)]
        place_hint: String,
        #[arg(long)]
        address: Option<String>,
        /// "YYYY-MM-DD HH:MM" in the programme's time zone, or RFC 3339.
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
        #[arg(long, default_value_t = 60)]
        minutes: i32,
        #[arg(long, default_value_t = 1)]
        volunteers: i32,
        /// One visit a day for N days from --start (e.g. "every evening for 5 days").
        #[arg(long)]
        repeat_days: Option<u32>,
    },
    Accept {
        order: String,
    },
    Release {
        order: String,
    },
    /// Staff: assign a volunteer directly.
    Assign {
        order: String,
        #[arg(long)]
        volunteer: String,
    },
    CheckIn {
        order: String,
    },
    CheckOut {
        order: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Confirm a visit: with the resident's PIN, in the app (resident or family), or as staff.
    Confirm {
        order: String,
        #[arg(long, conflicts_with = "staff")]
        pin: Option<String>,
        #[arg(long)]
        staff: bool,
    },
    Dispute {
        order: String,
        #[arg(long)]
        reason: String,
    },
    /// Staff: resolve a dispute, crediting (optionally a corrected number of minutes) or not.
    Resolve {
        order: String,
        #[arg(long)]
        no_credit: bool,
        #[arg(long)]
        minutes: Option<i64>,
        #[arg(long)]
        note: String,
    },
    Cancel {
        order: String,
        #[arg(long)]
        reason: String,
    },
    /// Open orders of a community: urgent first, 50 a page.
    Board {
        #[arg(long)]
        community: Option<String>,
        #[arg(long)]
        field: Option<String>,
        #[arg(long, default_value_t = 0)]
        page: u64,
    },
    Show {
        order: String,
    },
    /// My orders, or (staff) every order of a community.
    List {
        #[arg(long)]
        community: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Run the clock-driven rules: auto-confirm, expiry, urgent escalation (staff).
    Tick,
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    Balance {
        member: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// The printable passbook statement.
    Statement { member: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Recompute every balance from its entries; exit 3 naming any mismatch.
    Verify,
    /// Correct a transfer by a reversing transfer (staff), with a reason.
    Reverse {
        transfer: String,
        #[arg(long)]
        reason: String,
    },
    /// Minutes held by limits and waiting for staff.
    Held,
    Approve {
        flag: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    Dismiss {
        flag: String,
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActivityCmd {
    Create {
        #[arg(long)]
        community: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        starts: String,
        #[arg(long)]
        minutes: i64,
        #[arg(long)]
        capacity: i32,
        #[arg(long)]
        field: Option<String>,
    },
    Signup {
        activity: String,
        #[arg(long)]
        member: Option<String>,
    },
    /// Take attendance: credits each attending volunteer and closes the activity.
    Attend {
        activity: String,
        members: Vec<String>,
    },
    List {
        #[arg(long)]
        community: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FeedbackCmd {
    Rate {
        order: String,
        #[arg(long)]
        stars: i32,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// A volunteer's note on an order they served.
    Note {
        order: String,
        #[arg(long)]
        comment: String,
    },
    Respond {
        feedback: String,
        #[arg(long)]
        response: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SafeguardCmd {
    Report {
        #[arg(long)]
        about: Option<String>,
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        category: String,
        #[arg(long)]
        details: String,
    },
    List,
    Update {
        report: String,
        #[arg(long)]
        status: String,
        #[arg(long)]
        resolution: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    Csv {
        #[arg(long, value_enum)]
        by: ByArg,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ByArg {
    Field,
    Community,
    Month,
}

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    Json {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    Show,
    /// Change rules (administrators); unspecified rules keep their value.
    Set {
        #[arg(long)]
        payer: Option<String>,
        #[arg(long)]
        rounding_minutes: Option<i32>,
        #[arg(long)]
        max_per_visit: Option<i64>,
        #[arg(long)]
        max_per_day: Option<i64>,
        #[arg(long)]
        balance_cap: Option<i64>,
        #[arg(long)]
        overdraft_limit: Option<i64>,
        #[arg(long)]
        min_spend_age: Option<i32>,
        #[arg(long)]
        gift_policy: Option<String>,
        #[arg(long)]
        signup_bonus: Option<i64>,
        #[arg(long)]
        auto_confirm_minutes: Option<i32>,
        #[arg(long)]
        urgent_escalation_minutes: Option<i32>,
        #[arg(long)]
        timezone: Option<String>,
    },
}

struct App {
    db: DatabaseConnection,
    json: bool,
    lang: Lang,
    actor_key: Option<String>,
}

impl App {
    fn zh(&self) -> bool {
        self.lang == Lang::Zh
    }
    fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        if self.zh() {
            zh
        } else {
            en
        }
    }
    async fn actor(&self) -> Result<Actor> {
        let key = self.actor_key.as_deref().context(self.t(
            "请用 --as <手机号> 指定操作人",
            "say who is acting with --as <phone or id>",
        ))?;
        let m = read::find_member(&self.db, key).await?;
        Ok(service::load_actor(&self.db, &m.id).await?)
    }
    async fn ctx(&self) -> Result<Ctx> {
        let a = self.actor().await?;
        let device = service::outbox::device_id(&self.db).await?;
        Ok(Ctx::new(a.id(), device, now_ms()))
    }
    async fn exec(&self, cmd: Command) -> Result<service::Outcome> {
        let ctx = self.ctx().await?;
        Ok(service::execute(&self.db, &ctx, cmd).await?)
    }
    async fn member(&self, key: &str) -> Result<String> {
        Ok(read::find_member(&self.db, key).await?.id)
    }
    /// An order by full id or a unique prefix of at least 6 characters.
    async fn order(&self, key: &str) -> Result<String> {
        if key.len() < 6 {
            bail!(
                "{}",
                self.t(
                    "订单编号至少输入6位",
                    "give at least 6 characters of the order id"
                )
            );
        }
        let rows = timebank_core::sql::all(
            &self.db,
            "SELECT id FROM orders WHERE id LIKE ? ORDER BY id LIMIT 2",
            vec![format!("{key}%").into()],
        )
        .await?;
        match rows.len() {
            1 => Ok(rows[0].try_get::<String>("", "id")?),
            0 => Err(CoreError::not_found("order", key).into()),
            _ => bail!(
                "{}",
                self.t(
                    "有多个订单以此开头，请多输入几位",
                    "several orders start with this; give more characters"
                )
            ),
        }
    }
    async fn rules(&self) -> Result<Rules> {
        Ok(service::admin::rules(&self.db).await?.1)
    }
    async fn time(&self, s: &str) -> Result<i64> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(t.timestamp_millis());
        }
        let tz = self.rules().await?.tz();
        let n = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").with_context(|| {
            format!(
                "{}: {s}",
                self.t(
                    "时间格式应为 YYYY-MM-DD HH:MM",
                    "time must be YYYY-MM-DD HH:MM"
                )
            )
        })?;
        tz.from_local_datetime(&n)
            .earliest()
            .map(|t| t.timestamp_millis())
            .context("time")
    }
    async fn fmt_time(&self, ms: i64) -> String {
        let tz = self
            .rules()
            .await
            .map(|r| r.tz())
            .unwrap_or(chrono_tz_default());
        tz.timestamp_millis_opt(ms)
            .single()
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    }
    fn out<T: Serialize>(&self, v: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", text());
        }
    }
    fn done(&self, o: &service::Outcome, zh: &str, en: &str) {
        self.out(o, || format!("{} {}", self.t(zh, en), o.id));
    }
}

/// The clock: the system time, or `TIMEBANK_NOW` (RFC 3339 or Unix milliseconds) for
/// scripted tests and for entering paper records after the fact (the audit trail keeps the
/// device, and the city server clamps times that run ahead of its own clock).
fn now_ms() -> i64 {
    match std::env::var("TIMEBANK_NOW") {
        Ok(v) if !v.is_empty() => v
            .parse::<i64>()
            .ok()
            .or_else(|| {
                chrono::DateTime::parse_from_rfc3339(&v)
                    .ok()
                    .map(|t| t.timestamp_millis())
            })
            .unwrap_or_else(service::now_ms),
        _ => service::now_ms(),
    }
}

fn chrono_tz_default() -> chrono_tz::Tz {
    chrono_tz::Asia::Shanghai
}

fn bar(total: u64, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(msg.to_owned());
    b
}

pub async fn run(args: Cli) -> Result<ExitCode> {
    let fresh = matches!(args.cmd, Cmd::Demo | Cmd::Init(_) | Cmd::Enrol { .. });
    if let Cmd::Restore { from } = &args.cmd {
        let report = timebank_core::backup::restore(from, &args.db).await?;
        println!(
            "{} ({} accounts, {} entries)",
            if args.lang == Lang::Zh {
                "已恢复，账本核对无误"
            } else {
                "restored; the ledger verifies"
            },
            report.accounts,
            report.entries
        );
        return Ok(ExitCode::SUCCESS);
    }
    if fresh && args.db.exists() {
        bail!(
            "{} {}",
            if args.lang == Lang::Zh {
                "数据库已存在："
            } else {
                "the database already exists:"
            },
            args.db.display()
        );
    }
    if !fresh && !args.db.exists() {
        return Err(CoreError::new(timebank_core::Code::DeviceNotInitialised).into());
    }
    let db = db::connect(&db::sqlite_url(&args.db)).await?;
    let app = App {
        db,
        json: args.json,
        lang: args.lang,
        actor_key: args.actor.clone(),
    };
    let code = dispatch(&app, args.cmd).await?;
    app.db.close().await.ok();
    Ok(code)
}

async fn dispatch(app: &App, cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Init(a) => {
            let rules = Rules::default();
            let b = Bootstrap {
                city: (a.city.clone(), a.city),
                district: (a.district.clone(), a.district),
                subdistrict: (a.subdistrict.clone(), a.subdistrict),
                communities: a
                    .communities
                    .iter()
                    .map(|c| (c.clone(), c.clone()))
                    .collect(),
                center: (a.center.clone(), a.center),
                admin_name: a.admin_name,
                admin_phone: a.admin_phone,
                admin_birth: a.admin_birth,
                programme_name: a.programme,
                rules,
            };
            let txn = timebank_core::db::begin_write(&app.db).await?;
            let r = service::admin::bootstrap(&txn, &b, now_ms()).await?;
            txn.commit().await?;
            app.out(&r, || {
                format!(
                    "{}\ndevice {}\ncenter {}\nadmin {}",
                    app.t("已初始化本机数据库。", "Device database initialised."),
                    r.device_id,
                    r.center_id,
                    r.admin_id
                )
            });
        }
        Cmd::Demo => {
            let b = bar(6, app.t("生成演示数据", "seeding demo data"));
            let s = timebank_core::demo::seed(&app.db, now_ms(), &|d, _| b.set_position(d)).await?;
            b.finish_and_clear();
            app.out(&s, || {
                format!(
                    "{}\n  管理员 admin      {}\n  工作人员 staff    {}\n  志愿者 马军       {}\n  家属 王秀芝       {}\n  老人 王德明       {} (PIN {})\n  {} members, {} orders, {} activities",
                    app.t("演示数据已生成。可以用下面的手机号作为 --as：", "Demo data created. Use these phone numbers with --as:"),
                    s.admin_phone, s.staff_phone, s.volunteer_phone, s.family_phone, s.elder_phone, s.elder_pin, s.members, s.orders, s.activities
                )
            });
        }
        Cmd::Enrol { server, code, name } => {
            let b = bar(0, app.t("正在接收数据", "receiving data"));
            let r = timebank_core::sync::http::enrol(&app.db, &server, &code, &name, &|p| {
                b.set_length(p.total.max(0) as u64);
                b.set_position(p.received.max(0) as u64);
            })
            .await;
            b.finish_and_clear();
            let r = r?;
            app.out(&r, || {
                format!(
                    "{} {} {}",
                    app.t(
                        "已登记到城市服务器，已同步",
                        "Enrolled with the city server; pulled"
                    ),
                    r.pulled,
                    app.t("条记录", "rows")
                )
            });
        }
        Cmd::Sync { watch, every } => {
            if watch {
                let (_tx, rx) = tokio::sync::watch::channel(false);
                let wake = tokio::sync::Notify::new();
                timebank_core::sync::http::run_loop(
                    &app.db,
                    std::time::Duration::from_secs(every.max(1)),
                    std::time::Duration::from_secs(300),
                    &wake,
                    rx,
                    |ev| {
                        if let timebank_core::sync::http::RoundEvent::Ended(Err(e)) = ev {
                            eprintln!("{}", e.message(app.lang));
                        }
                    },
                )
                .await;
            } else {
                let server = service::outbox::get_setting(&app.db, timebank_core::sync::K_SERVER)
                    .await?
                    .context(app.t(
                        "本机还没有登记到城市服务器（timebank enrol）",
                        "this device is not enrolled (timebank enrol)",
                    ))?;
                let b = bar(0, app.t("正在接收数据", "receiving data"));
                let r = timebank_core::sync::sync_once_with_progress(
                    &app.db,
                    &timebank_core::sync::http::Http::new(&server),
                    &|p| {
                        b.set_length(p.total.max(0) as u64);
                        b.set_position(p.received.max(0) as u64);
                    },
                )
                .await;
                b.finish_and_clear();
                match r {
                    Ok(r) => app.out(&r, || {
                        format!(
                            "{}: {} {}, {} {}, {} {}",
                            app.t("同步完成", "Synced"),
                            r.pushed,
                            app.t("条已上传", "pushed"),
                            r.rejected,
                            app.t("条被拒绝", "rejected"),
                            r.pulled,
                            app.t("条已更新", "pulled")
                        )
                    }),
                    Err(e) => {
                        let pending = timebank_core::sync::status(&app.db).await?.pending;
                        eprintln!("{} {}", app.t("离线：", "Offline:"), e.message(app.lang));
                        eprintln!(
                            "{} {pending}",
                            app.t("等待上传的更改：", "changes waiting:")
                        );
                        return Ok(ExitCode::from(4));
                    }
                }
            }
        }
        Cmd::SyncStatus => {
            let st = timebank_core::sync::status(&app.db).await?;
            let last = match st.last_success_ms {
                Some(ms) => app.fmt_time(ms).await,
                None => "-".into(),
            };
            app.out(&st, || {
                format!(
                    "{}  {}: {}  {}: {}{}",
                    if st.online {
                        app.t("在线", "online")
                    } else {
                        app.t("离线", "offline")
                    },
                    app.t("等待上传", "waiting"),
                    st.pending,
                    app.t("上次同步", "last sync"),
                    last,
                    st.last_error
                        .as_ref()
                        .map(|e| format!("\n{e}"))
                        .unwrap_or_default()
                )
            });
        }
        Cmd::Member(m) => member(app, m).await?,
        Cmd::Order(o) => return order(app, o).await,
        Cmd::Account(a) => {
            let actor = app.actor().await?;
            let (member, passbook) = match &a {
                AccountCmd::Balance { member, .. } | AccountCmd::Statement { member } => {
                    (member.clone(), matches!(a, AccountCmd::Statement { .. }))
                }
            };
            let id = match member {
                Some(k) => app.member(&k).await?,
                None => actor.id().to_owned(),
            };
            if passbook {
                let p = read::passbook(&app.db, &actor, &id).await?;
                let tz = app.rules().await?.tz();
                app.out(&p, || read::passbook_text(&p, tz));
            } else {
                let limit = if let AccountCmd::Balance { limit, .. } = a {
                    limit
                } else {
                    50
                };
                let b = read::balance(&app.db, &actor, &id, limit).await?;
                let mut lines = vec![format!(
                    "{} {}: {}",
                    b.name,
                    app.t("余额", "balance"),
                    format_minutes(b.balance, app.zh())
                )];
                for e in &b.entries {
                    lines.push(format!(
                        "  {}  {:>10}  {}  {}",
                        app.fmt_time(e.at).await,
                        format_minutes(e.amount, app.zh()),
                        e.kind,
                        e.memo
                    ));
                }
                app.out(&b, || lines.join("\n"));
            }
        }
        Cmd::Gift { to, minutes, note } => {
            let to = app.member(&to).await?;
            let o = app
                .exec(Command::Gift {
                    transfer_id: new_id(),
                    to_member_id: to,
                    minutes,
                    note,
                })
                .await?;
            app.done(&o, "已赠送。记录号", "Hours given. Transfer");
        }
        Cmd::Ledger(l) => return ledger(app, l).await,
        Cmd::Activity(a) => activity(app, a).await?,
        Cmd::Feedback(f) => match f {
            FeedbackCmd::Rate {
                order,
                stars,
                comment,
            } => {
                let order_id = app.order(&order).await?;
                let o = app
                    .exec(Command::RateService {
                        feedback_id: new_id(),
                        order_id,
                        rating: stars,
                        comment,
                    })
                    .await?;
                app.done(&o, "感谢评价。", "Thank you for the rating.");
            }
            FeedbackCmd::Note { order, comment } => {
                let order_id = app.order(&order).await?;
                let o = app
                    .exec(Command::VolunteerNote {
                        feedback_id: new_id(),
                        order_id,
                        comment,
                    })
                    .await?;
                app.done(&o, "已记录。", "Noted.");
            }
            FeedbackCmd::Respond { feedback, response } => {
                let o = app
                    .exec(Command::RespondFeedback {
                        feedback_id: feedback,
                        response,
                    })
                    .await?;
                app.done(&o, "已回复。", "Answered.");
            }
        },
        Cmd::Safeguard(s) => match s {
            SafeguardCmd::Report {
                about,
                order,
                category,
                details,
            } => {
                let subject_member_id = match about {
                    Some(a) => Some(app.member(&a).await?),
                    None => None,
                };
                let order_id = match order {
                    Some(o) => Some(app.order(&o).await?),
                    None => None,
                };
                let o = app
                    .exec(Command::FileSafeguarding(FileSafeguarding {
                        report_id: new_id(),
                        subject_member_id,
                        order_id,
                        category,
                        details,
                    }))
                    .await?;
                app.done(
                    &o,
                    "已提交给社区工作人员，只有工作人员可以看到。编号",
                    "Sent to community staff; only staff can see it. Report",
                );
            }
            SafeguardCmd::List => {
                let a = app.actor().await?;
                let list = read::safeguarding(&app.db, &a).await?;
                let mut lines = Vec::new();
                for r in &list {
                    lines.push(format!(
                        "{}  {}  {}  {}",
                        r.id,
                        app.fmt_time(r.created_at).await,
                        r.category,
                        r.status
                    ));
                }
                app.out(&list, || lines.join("\n"));
            }
            SafeguardCmd::Update {
                report,
                status,
                resolution,
            } => {
                let o = app
                    .exec(Command::UpdateSafeguarding {
                        report_id: report,
                        status,
                        resolution,
                    })
                    .await?;
                app.done(&o, "已更新。", "Updated.");
            }
        },
        Cmd::Report(ReportCmd::Csv { by, out }) => {
            let a = app.actor().await?;
            let by = match by {
                ByArg::Field => read::ReportBy::Field,
                ByArg::Community => read::ReportBy::Community,
                ByArg::Month => read::ReportBy::Month,
            };
            let csv = read::report_csv(&app.db, &a, by).await?;
            write_or_print(out, &csv)?;
        }
        Cmd::Export(ExportCmd::Json { out }) => {
            let a = app.actor().await?;
            let v = read::export_json(&app.db, &a).await?;
            write_or_print(out, &serde_json::to_string_pretty(&v)?)?;
        }
        Cmd::Backup { to } => {
            let n = timebank_core::backup::backup(&app.db, &to).await?;
            app.out(&serde_json::json!({"file": to, "bytes": n}), || {
                format!(
                    "{} {} ({} KiB)",
                    app.t("已备份到", "Backed up to"),
                    to.display(),
                    n / 1024
                )
            });
        }
        Cmd::Restore { .. } => unreachable!("handled before opening"),
        Cmd::Rules(r) => rules(app, r).await?,
        Cmd::Dashboard { all } => {
            let scope: Option<Vec<String>> = if all {
                None
            } else {
                let center = service::outbox::get_setting(&app.db, service::outbox::K_CENTER)
                    .await?
                    .unwrap_or_default();
                let rows = timebank_core::sql::all(
                    &app.db,
                    "SELECT community_id FROM center_communities WHERE center_id = ?",
                    vec![center.into()],
                )
                .await?;
                Some(
                    rows.iter()
                        .filter_map(|r| r.try_get::<String>("", "community_id").ok())
                        .collect(),
                )
            };
            let d = read::dashboard(&app.db, scope.as_deref(), now_ms()).await?;
            let zh = app.zh();
            app.out(&d, || {
                let mut s = format!(
                    "{}: {}  {}: {}\n{}: {}  {}: {}  {}: {} / {}\n{}: {}  {}: {}\n{}: {}  {}: {}",
                    app.t("登记志愿者", "volunteers"),
                    d.volunteers_registered,
                    app.t("近30天活跃", "active (30 d)"),
                    d.volunteers_active_30d,
                    app.t("待接单", "open"),
                    d.orders_open,
                    app.t("服务中", "in service"),
                    d.orders_in_service,
                    app.t("今日/本月完成", "completed today/month"),
                    d.orders_completed_today,
                    d.orders_completed_month,
                    app.t("存入时间", "hours deposited"),
                    format_minutes(d.minutes_deposited, zh),
                    app.t("兑换时间", "hours spent"),
                    format_minutes(d.minutes_spent, zh),
                    app.t("接单中位时间（分钟）", "median minutes to accept"),
                    d.median_minutes_to_accept
                        .map(|m| m.to_string())
                        .unwrap_or("-".into()),
                    app.t("满意度", "satisfaction"),
                    d.satisfaction_avg
                        .map(|x| format!("{x:.2}/5 ({})", d.ratings))
                        .unwrap_or("-".into()),
                );
                s.push_str(&format!("\n{}", app.t("按服务领域：", "by service field:")));
                for c in &d.by_field {
                    s.push_str(&format!(
                        "\n  {:<10} {:>4} {}  {}",
                        if zh { &c.label_zh } else { &c.label_en },
                        c.orders_completed,
                        app.t("单", "orders"),
                        format_minutes(c.minutes_credited, zh)
                    ));
                }
                s.push_str(&format!("\n{}", app.t("按社区：", "by community:")));
                for c in &d.by_community {
                    s.push_str(&format!(
                        "\n  {:<10} {:>4} {}  {}",
                        if zh { &c.label_zh } else { &c.label_en },
                        c.orders_completed,
                        app.t("单", "orders"),
                        format_minutes(c.minutes_credited, zh)
                    ));
                }
                s
            });
        }
        Cmd::Inbox { limit } => {
            let a = app.actor().await?;
            let items = read::inbox(&app.db, &a, limit).await?;
            let mut lines = Vec::new();
            for i in &items {
                lines.push(format!(
                    "{} {}  {}  {}",
                    if i.read { " " } else { "•" },
                    app.fmt_time(i.created_at).await,
                    i.kind,
                    i.params
                ));
            }
            app.out(&items, || {
                if lines.is_empty() {
                    app.t("收件箱是空的。", "The inbox is empty.").to_owned()
                } else {
                    lines.join("\n")
                }
            });
        }
        Cmd::Audit { entity, limit } => {
            let a = app.actor().await?;
            let entity = match entity {
                Some(e) if e.len() >= 6 => Some(app.order(&e).await.unwrap_or(e)),
                other => other,
            };
            let rows = read::audit(&app.db, &a, entity.as_deref(), limit).await?;
            let mut lines = Vec::new();
            for r in &rows {
                let behalf = r
                    .on_behalf_of
                    .as_ref()
                    .map(|b| format!(" {} {b}", app.t("代表", "on behalf of")))
                    .unwrap_or_default();
                lines.push(format!(
                    "{}  {}{}  {}  {} {}  device {}",
                    app.fmt_time(r.at).await,
                    r.actor,
                    behalf,
                    r.action,
                    r.entity,
                    r.entity_id,
                    r.device_id
                ));
            }
            app.out(&rows, || lines.join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_or_print(out: Option<PathBuf>, text: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(&p, text).with_context(|| format!("write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s.trim())
        .with_context(|| format!("unknown role '{s}' (resident, family, volunteer, staff, admin)"))
}

async fn member(app: &App, m: MemberCmd) -> Result<()> {
    match m {
        MemberCmd::Add {
            name,
            phone,
            birth,
            community,
            roles,
            address,
            fields,
            skills,
            availability,
            center,
        } => {
            let roles: Vec<Role> = roles.iter().map(|r| parse_role(r)).collect::<Result<_>>()?;
            let community = read::find_community(&app.db, &community).await?.id;
            let center_id = if roles.contains(&Role::Staff) {
                match center {
                    Some(c) => Some(c),
                    None => {
                        service::outbox::get_setting(&app.db, service::outbox::K_CENTER).await?
                    }
                }
            } else {
                None
            };
            let volunteer = roles
                .contains(&Role::Volunteer)
                .then_some(VolunteerProfile {
                    service_fields: fields,
                    skills,
                    availability,
                });
            let o = app
                .exec(Command::RegisterMember(RegisterMember {
                    member_id: new_id(),
                    name,
                    phone,
                    date_of_birth: birth,
                    home_community_id: community,
                    address,
                    roles,
                    hardship: false,
                    center_id,
                    volunteer,
                }))
                .await?;
            app.done(&o, "已登记。编号", "Registered. Member");
        }
        MemberCmd::Import { file } => {
            let data = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let ctx = app.ctx().await?;
            let b = bar(0, app.t("导入", "importing"));
            let r = timebank_core::import::import_members(&app.db, &ctx, &data, &|d, t| {
                b.set_length(t);
                b.set_position(d);
            })
            .await?;
            b.finish_and_clear();
            app.out(&r, || {
                format!(
                    "{} {} ({} {})",
                    app.t("已导入", "Imported"),
                    r.imported,
                    r.volunteers,
                    app.t("名志愿者", "volunteers")
                )
            });
        }
        MemberCmd::Link {
            member,
            relative,
            relation,
        } => {
            let member_id = app.member(&member).await?;
            let relative_id = app.member(&relative).await?;
            let o = app
                .exec(Command::LinkFamily {
                    member_id,
                    relative_id,
                    relation: relation.into(),
                })
                .await?;
            app.done(&o, "已记录亲属关系：", "Family link recorded:");
        }
        MemberCmd::Verify { member, suspend } => {
            let member_id = app.member(&member).await?;
            let vetting = if suspend {
                Vetting::Suspended
            } else {
                Vetting::Verified
            };
            let o = app.exec(Command::SetVetting { member_id, vetting }).await?;
            app.done(
                &o,
                if suspend {
                    "已暂停："
                } else {
                    "已审核通过："
                },
                if suspend { "Suspended:" } else { "Verified:" },
            );
        }
        MemberCmd::Pin { member, pin } => {
            let member_id = app.member(&member).await?;
            let pin_hash = hash_pin(&pin)?;
            let o = app
                .exec(Command::SetPin {
                    member_id,
                    pin_hash,
                })
                .await?;
            app.done(&o, "已设置密码：", "PIN set:");
        }
        MemberCmd::Hardship { member, clear } => {
            let member_id = app.member(&member).await?;
            let o = app
                .exec(Command::SetHardship {
                    member_id,
                    hardship: !clear,
                })
                .await?;
            app.done(&o, "已更新困难情况：", "Hardship updated:");
        }
        MemberCmd::List { community } => {
            let a = app.actor().await?;
            let cid = read::find_community(&app.db, &community).await?.id;
            let rows = read::members_of(&app.db, &a, &cid, now_ms()).await?;
            app.out(&rows, || {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{}  {:<6} {:>3}岁  {}  {}  {}",
                            r.id,
                            r.name,
                            r.age,
                            r.phone,
                            r.roles.join(","),
                            r.vetting.clone().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn order(app: &App, o: OrderCmd) -> Result<ExitCode> {
    match o {
        OrderCmd::Post {
            beneficiary,
            service,
            description,
            urgent,
            place_hint,
            address,
            start,
            end,
            minutes,
            volunteers,
            repeat_days,
        } => {
            let actor = app.actor().await?;
            let beneficiary_id = match beneficiary {
                Some(b) => app.member(&b).await?,
                None => actor.id().to_owned(),
            };
            let window_start = match start {
                Some(s) => Some(app.time(&s).await?),
                None => None,
            };
            let window_end = match end {
                Some(s) => Some(app.time(&s).await?),
                None => None,
            };
            let visits = match (repeat_days, window_start) {
                (Some(n), Some(s)) => (0..i64::from(n)).map(|d| s + d * 86_400_000).collect(),
                (Some(_), None) => bail!(
                    "{}",
                    app.t(
                        "重复服务需要用 --start 指定第一次的时间",
                        "--repeat-days needs --start for the first visit"
                    )
                ),
                _ => vec![],
            };
            let out = app
                .exec(Command::PostOrder(PostOrder {
                    order_id: new_id(),
                    beneficiary_id,
                    service_code: service,
                    description,
                    urgent,
                    place_hint,
                    address,
                    window_start,
                    window_end,
                    expected_minutes: minutes,
                    volunteers_needed: volunteers,
                    visits,
                }))
                .await?;
            app.done(&out, "已发布求助订单", "Order posted");
        }
        OrderCmd::Accept { order } => {
            let order_id = app.order(&order).await?;
            let o = app.exec(Command::AcceptOrder { order_id }).await?;
            app.done(&o, "接单成功：", "Accepted:");
        }
        OrderCmd::Release { order } => {
            let order_id = app.order(&order).await?;
            let o = app.exec(Command::ReleaseOrder { order_id }).await?;
            app.done(&o, "已放弃订单：", "Released:");
        }
        OrderCmd::Assign { order, volunteer } => {
            let order_id = app.order(&order).await?;
            let volunteer_id = app.member(&volunteer).await?;
            let o = app
                .exec(Command::AssignVolunteer {
                    order_id,
                    volunteer_id,
                })
                .await?;
            app.done(&o, "已指派：", "Assigned:");
        }
        OrderCmd::CheckIn { order } => {
            let order_id = app.order(&order).await?;
            let o = app
                .exec(Command::CheckIn {
                    order_id,
                    visit_id: None,
                })
                .await?;
            app.done(&o, "已签到：", "Checked in:");
        }
        OrderCmd::CheckOut { order, note } => {
            let order_id = app.order(&order).await?;
            let o = app
                .exec(Command::CheckOut {
                    order_id,
                    note,
                    served: None,
                })
                .await?;
            let m = o.detail["minutes"].as_i64().unwrap_or(0);
            app.out(&o, || {
                format!(
                    "{} {}",
                    app.t("已签退，服务时长", "Checked out after"),
                    format_minutes(m, app.zh())
                )
            });
        }
        OrderCmd::Confirm { order, pin, staff } => {
            let order_id = app.order(&order).await?;
            let method = if pin.is_some() {
                ConfirmMethod::Pin
            } else if staff {
                ConfirmMethod::Staff
            } else {
                ConfirmMethod::App
            };
            let o = app
                .exec(Command::ConfirmVisit {
                    visit_id: None,
                    order_id,
                    method,
                    pin,
                    confirms: None,
                })
                .await?;
            let mut lines = vec![app.t("服务已确认。", "Visit confirmed.").to_owned()];
            for c in o.detail["credited"].as_array().cloned().unwrap_or_default() {
                let name = read::find_member(&app.db, c["volunteer"].as_str().unwrap_or(""))
                    .await
                    .map(|m| m.name)
                    .unwrap_or_default();
                lines.push(format!(
                    "  {name}: +{}{}",
                    format_minutes(c["credited"].as_i64().unwrap_or(0), app.zh()),
                    match c["held"].as_i64().unwrap_or(0) {
                        0 => String::new(),
                        h => format!(
                            " ({} {})",
                            format_minutes(h, app.zh()),
                            app.t("超出上限，待工作人员审核", "over a limit, held for staff")
                        ),
                    }
                ));
            }
            app.out(&o, || lines.join("\n"));
        }
        OrderCmd::Dispute { order, reason } => {
            let order_id = app.order(&order).await?;
            let o = app
                .exec(Command::DisputeVisit {
                    order_id,
                    reason,
                    visit_id: None,
                })
                .await?;
            app.done(
                &o,
                "已提出异议，工作人员会处理：",
                "Disputed; staff will look at it:",
            );
        }
        OrderCmd::Resolve {
            order,
            no_credit,
            minutes,
            note,
        } => {
            let order_id = app.order(&order).await?;
            let o = app
                .exec(Command::ResolveDispute {
                    visit_id: None,
                    order_id,
                    credit: !no_credit,
                    minutes,
                    note,
                })
                .await?;
            app.done(&o, "已处理异议：", "Dispute resolved:");
        }
        OrderCmd::Cancel { order, reason } => {
            let order_id = app.order(&order).await?;
            let o = app.exec(Command::CancelOrder { order_id, reason }).await?;
            app.done(&o, "已取消：", "Cancelled:");
        }
        OrderCmd::Board {
            community,
            field,
            page,
        } => {
            let a = app.actor().await?;
            let community_id = match community {
                Some(c) => Some(read::find_community(&app.db, &c).await?.id),
                None => None,
            };
            let items = read::board(
                &app.db,
                &a,
                &read::BoardQuery {
                    community_id,
                    field_code: field,
                    page,
                    per_page: 50,
                },
            )
            .await?;
            let mut lines = Vec::new();
            for i in &items {
                lines.push(format!(
                    "{} {}  {:<8} {}  {}  {}/{}  {}",
                    if i.urgent {
                        app.t("【急】", "[URGENT]")
                    } else {
                        "    "
                    },
                    &i.id,
                    if app.zh() {
                        &i.service_zh
                    } else {
                        &i.service_en
                    },
                    i.place_hint,
                    format_minutes(i.expected_minutes.into(), app.zh()),
                    i.accepted_count,
                    i.volunteers_needed,
                    app.fmt_time(i.created_at).await
                ));
            }
            app.out(&items, || {
                if lines.is_empty() {
                    app.t("现在没有待接的订单。", "No open orders right now.")
                        .to_owned()
                } else {
                    lines.join("\n")
                }
            });
        }
        OrderCmd::Show { order } => {
            let a = app.actor().await?;
            let id = app.order(&order).await?;
            let v = read::order_detail(&app.db, &a, &id).await?;
            app.out(&v, || {
                format!(
                    "{}  {}  [{}]\n{}: {}  {}: {}\n{}: {}\n{}: {}\n{}: {}/{}  {}: {}/{}  {}",
                    v.id,
                    if app.zh() {
                        &v.service_zh
                    } else {
                        &v.service_en
                    },
                    if app.zh() { &v.status_zh } else { &v.status },
                    app.t("受助人", "for"),
                    v.beneficiary_name,
                    app.t("发布人", "posted by"),
                    v.posted_by_name,
                    app.t("描述", "description"),
                    v.description,
                    app.t("地点", "place"),
                    v.address.clone().unwrap_or_else(|| v.place_hint.clone()),
                    app.t("志愿者", "volunteers"),
                    v.accepted_count,
                    v.volunteers_needed,
                    app.t("服务次数", "visits"),
                    v.visits_done,
                    v.visits_total,
                    v.volunteers.join("、")
                )
            });
        }
        OrderCmd::List {
            community,
            status,
            limit,
        } => {
            let a = app.actor().await?;
            let community_id = match community {
                Some(c) => Some(read::find_community(&app.db, &c).await?.id),
                None => None,
            };
            let rows = read::list_orders(
                &app.db,
                &a,
                community_id.as_deref(),
                status.as_deref(),
                limit,
            )
            .await?;
            let mut lines = Vec::new();
            for r in &rows {
                lines.push(format!(
                    "{}  {:<22} {:<8} {}  {}",
                    r.id,
                    r.status,
                    r.service_zh,
                    r.beneficiary_name,
                    app.fmt_time(r.updated_at).await
                ));
            }
            app.out(&rows, || lines.join("\n"));
        }
        OrderCmd::Tick => {
            let o = app.exec(Command::Tick).await?;
            app.out(&o, || {
                format!(
                    "{} {}",
                    app.t("定时规则已运行：", "Scheduled rules ran:"),
                    o.detail
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ledger(app: &App, l: LedgerCmd) -> Result<ExitCode> {
    match l {
        LedgerCmd::Verify => {
            let b = bar(3, app.t("核对账本", "verifying the ledger"));
            let r = read::verify(&app.db, &|step, _| b.set_position(step)).await?;
            b.finish_and_clear();
            let ok = r.ok();
            app.out(&r, || {
                let mut s = format!(
                    "{}: {} {}, {} {}, {} {}",
                    if ok {
                        app.t("账本核对无误", "The ledger verifies")
                    } else {
                        app.t("账本核对不平！", "THE LEDGER DOES NOT VERIFY!")
                    },
                    r.accounts,
                    app.t("个账户", "accounts"),
                    r.transfers,
                    app.t("笔转账", "transfers"),
                    r.entries,
                    app.t("条分录", "entries")
                );
                if r.total_of_all_entries != 0 && !r.some_communities {
                    s.push_str(&format!(
                        "\n  {} {}",
                        app.t("全部分录合计不为零：", "all entries sum to"),
                        r.total_of_all_entries
                    ));
                }
                for m in &r.mismatched_accounts {
                    s.push_str(&format!(
                        "\n  {} {} ({}): {} {}, {} {}",
                        app.t("账户", "account"),
                        m.account_id,
                        m.member_name.clone().unwrap_or_default(),
                        app.t("记录余额", "stored balance"),
                        m.stored_balance,
                        app.t("分录合计", "sum of entries"),
                        m.sum_of_entries
                    ));
                }
                for m in &r.held_in_part {
                    s.push_str(&format!(
                        "\n  {} {}: {} {}, {} {}",
                        app.t(
                            "项目账户（本设备只保存所服务社区的分录，由市服务器核对）",
                            "programme account (this device holds only its communities' entries on it; the city server checks it)"
                        ),
                        m.account_id,
                        app.t("全市余额", "city-wide balance"),
                        m.stored_balance,
                        app.t("本设备分录合计", "sum of the entries on this device"),
                        m.sum_of_entries
                    ));
                }
                for (t, s2) in &r.transfers_held_in_part {
                    s.push_str(&format!(
                        "\n  {} {t}: {} {s2}",
                        app.t(
                            "与其他社区之间的转账（本设备只保存本社区一方的分录）",
                            "transfer with another community (this device holds only its side's entries)"
                        ),
                        app.t("本设备分录合计", "sum of the entries on this device"),
                    ));
                }
                for (t, s2) in &r.unbalanced_transfers {
                    s.push_str(&format!(
                        "\n  {} {t} {} {s2}",
                        app.t("转账", "transfer"),
                        app.t("合计", "sums to")
                    ));
                }
                s
            });
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            });
        }
        LedgerCmd::Reverse { transfer, reason } => {
            let o = app
                .exec(Command::ReverseTransfer {
                    transfer_id: new_id(),
                    reverses_id: transfer,
                    reason,
                })
                .await?;
            app.done(&o, "已冲正。冲正记录", "Reversed. Correction");
        }
        LedgerCmd::Held => {
            let a = app.actor().await?;
            let list = read::held(&app.db, &a).await?;
            app.out(&list, || {
                list.iter()
                    .map(|f| {
                        format!(
                            "{}  {}  {}  {}",
                            f.id,
                            f.kind,
                            f.member_name,
                            format_minutes(f.held_minutes, app.zh())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        LedgerCmd::Approve { flag, note } => {
            let o = app
                .exec(Command::ApproveHeld {
                    flag_id: flag,
                    transfer_id: new_id(),
                    note,
                })
                .await?;
            app.done(&o, "已批准：", "Approved:");
        }
        LedgerCmd::Dismiss { flag, note } => {
            let o = app
                .exec(Command::DismissHeld {
                    flag_id: flag,
                    note,
                })
                .await?;
            app.done(&o, "已驳回：", "Dismissed:");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn activity(app: &App, a: ActivityCmd) -> Result<()> {
    match a {
        ActivityCmd::Create {
            community,
            title,
            description,
            starts,
            minutes,
            capacity,
            field,
        } => {
            let community_id = read::find_community(&app.db, &community).await?.id;
            let starts_at = app.time(&starts).await?;
            let o = app
                .exec(Command::CreateActivity(CreateActivity {
                    activity_id: new_id(),
                    community_id,
                    title,
                    description,
                    field_code: field,
                    starts_at,
                    credit_minutes: minutes,
                    capacity,
                }))
                .await?;
            app.done(&o, "已创建活动", "Activity created");
        }
        ActivityCmd::Signup { activity, member } => {
            let actor = app.actor().await?;
            let member_id = match member {
                Some(m) => app.member(&m).await?,
                None => actor.id().to_owned(),
            };
            let o = app
                .exec(Command::SignUpActivity {
                    activity_id: activity,
                    member_id,
                })
                .await?;
            app.done(&o, "报名成功：", "Signed up:");
        }
        ActivityCmd::Attend { activity, members } => {
            let mut ids = Vec::new();
            for m in &members {
                ids.push(app.member(m).await?);
            }
            let o = app
                .exec(Command::RecordAttendance {
                    activity_id: activity,
                    member_ids: ids,
                })
                .await?;
            app.done(
                &o,
                "已记录签到并记入时间：",
                "Attendance recorded and credited:",
            );
        }
        ActivityCmd::List { community } => {
            let a = app.actor().await?;
            let cid = match community {
                Some(c) => read::find_community(&app.db, &c).await?.id,
                None => a.member.home_community_id.clone(),
            };
            let rows = timebank_core::sql::all(
                &app.db,
                "SELECT a.id, a.title, a.starts_at, a.capacity, a.status, a.credit_minutes, (SELECT COUNT(*) FROM activity_signups s WHERE s.activity_id = a.id) AS taken FROM activities a WHERE a.community_id = ? ORDER BY a.starts_at",
                vec![cid.into()],
            )
            .await?;
            let mut list = Vec::new();
            for r in rows {
                let v = serde_json::json!({
                    "id": r.try_get::<String>("", "id")?, "title": r.try_get::<String>("", "title")?,
                    "starts_at": r.try_get::<i64>("", "starts_at")?, "capacity": r.try_get::<i32>("", "capacity")?,
                    "signed_up": r.try_get::<i64>("", "taken")?, "status": r.try_get::<String>("", "status")?,
                    "credit_minutes": r.try_get::<i64>("", "credit_minutes")?,
                });
                list.push(v);
            }
            let mut lines = Vec::new();
            for v in &list {
                lines.push(format!(
                    "{}  {}  {}  {}/{}  {}",
                    v["id"].as_str().unwrap_or(""),
                    app.fmt_time(v["starts_at"].as_i64().unwrap_or(0)).await,
                    v["title"].as_str().unwrap_or(""),
                    v["signed_up"],
                    v["capacity"],
                    v["status"].as_str().unwrap_or("")
                ));
            }
            app.out(&list, || lines.join("\n"));
        }
    }
    Ok(())
}

async fn rules(app: &App, r: RulesCmd) -> Result<()> {
    let mut cur = app.rules().await?;
    match r {
        RulesCmd::Show => {}
        RulesCmd::Set {
            payer,
            rounding_minutes,
            max_per_visit,
            max_per_day,
            balance_cap,
            overdraft_limit,
            min_spend_age,
            gift_policy,
            signup_bonus,
            auto_confirm_minutes,
            urgent_escalation_minutes,
            timezone,
        } => {
            if let Some(p) = payer {
                cur.payer = Payer::parse(&p)
                    .with_context(|| format!("payer must be issuing or beneficiary, not '{p}'"))?;
            }
            if let Some(g) = gift_policy {
                cur.gift_policy = GiftPolicy::parse(&g).with_context(|| {
                    format!("gift policy must be spouse, direct_relatives or anyone, not '{g}'")
                })?;
            }
            macro_rules! set {
                ($($f:ident),*) => { $( if let Some(v) = $f { cur.$f = v; } )* };
            }
            set!(
                rounding_minutes,
                max_per_visit,
                max_per_day,
                balance_cap,
                overdraft_limit,
                min_spend_age,
                signup_bonus,
                auto_confirm_minutes,
                urgent_escalation_minutes,
                timezone
            );
            app.exec(Command::SetRules(cur.clone())).await?;
        }
    }
    let zh = app.zh();
    app.out(&cur, || {
        format!(
            "{}: {}\n{}: {} {}\n{}: {}  {}: {}\n{}: {}  {}: {}\n{}: {}\n{}: {}\n{}: {}\n{}: {} {}  {}: {} {}\n{}: {}",
            app.t("谁支付服务", "who pays"), cur.payer, app.t("取整单位", "rounding"), cur.rounding_minutes, app.t("分钟", "min"),
            app.t("单次上限", "max per visit"), format_minutes(cur.max_per_visit, zh), app.t("每日上限", "max per day"), format_minutes(cur.max_per_day, zh),
            app.t("余额上限", "balance cap"), format_minutes(cur.balance_cap, zh), app.t("透支额度", "overdraft"), format_minutes(cur.overdraft_limit, zh),
            app.t("兑换最低年龄", "minimum age to spend"), cur.min_spend_age,
            app.t("可赠送给", "gifts to"), cur.gift_policy.describe(zh),
            app.t("注册奖励", "sign-up bonus"), format_minutes(cur.signup_bonus, zh),
            app.t("自动确认", "auto-confirm after"), cur.auto_confirm_minutes, app.t("分钟", "min"), app.t("紧急升级", "urgent escalation after"), cur.urgent_escalation_minutes, app.t("分钟", "min"),
            app.t("时区", "time zone"), cur.timezone
        )
    });
    Ok(())
}
