//! Errors of the core. Every refusal carries a stable machine [`Code`] that front ends branch
//! on and translate; [`CoreError::message`] gives the plain message in zh-CN or en.
use serde::Serialize;
use std::collections::BTreeMap;

/// Stable machine codes. The wire form is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Code {
    NotFound,
    Forbidden,
    OutOfScope,
    InvalidInput,
    IllegalTransition,
    OrderFull,
    AlreadyAccepted,
    NotAccepted,
    NotAVolunteer,
    VolunteerNotVerified,
    AlreadyCheckedIn,
    NotCheckedIn,
    PinIncorrect,
    PinNotSet,
    GiftNotAllowed,
    InsufficientBalance,
    BalanceCapExceeded,
    UnderMinSpendAge,
    OverdraftLimit,
    ActivityFull,
    AlreadySignedUp,
    NotSignedUp,
    AlreadyRated,
    AlreadyReversed,
    AlreadyCredited,
    DuplicatePhone,
    Duplicate,
    LedgerAppendOnly,
    UnbalancedTransfer,
    DeviceNotInitialised,
    CsvInvalid,
    Database,
    Io,
    /// The city server cannot be reached (offline, or the server is down).
    ServerUnreachable,
    /// The city server answered with an error it did not explain.
    ServerRefused,
    /// The city server no longer keeps the changes after this device's cursor (deletions past
    /// their retention): the device must pull everything again.
    ResyncRequired,
    /// The desktop app: nobody is signed in, or the session was locked after inactivity.
    SignInRequired,
    /// The desktop app: too many wrong PINs in a row.
    TooManyPinAttempts,
}

impl Code {
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Message templates: `{name}` is replaced by the parameter of that name.
    fn template(self, lang: Lang) -> &'static str {
        use Code::*;
        match (self, lang) {
            (NotFound, Lang::Zh) => "找不到{entity}（{id}）。请检查编号后重试。",
            (NotFound, Lang::En) => "No {entity} with id {id} was found. Check the id and try again.",
            (Forbidden, Lang::Zh) => "您没有权限执行此操作：{action}。如需办理，请联系社区工作人员。",
            (Forbidden, Lang::En) => "You are not allowed to {action}. Ask community staff if this needs doing.",
            (OutOfScope, Lang::Zh) => "此操作涉及您服务范围以外的社区（{community}）。",
            (OutOfScope, Lang::En) => "This concerns a community outside your area ({community}).",
            (InvalidInput, Lang::Zh) => "“{field}”填写有误：{reason_zh}",
            (InvalidInput, Lang::En) => "The field '{field}' is not valid: {reason_en}",
            (IllegalTransition, Lang::Zh) => "订单当前状态为“{from}”，不能执行“{action}”。",
            (IllegalTransition, Lang::En) => "This cannot be done now ({action}): it is {from}.",
            (OrderFull, Lang::Zh) => "这个订单已被{taken_by}接单，人数已满。",
            (OrderFull, Lang::En) => "This order was already taken by {taken_by}; no more volunteers are needed.",
            (AlreadyAccepted, Lang::Zh) => "您已经接过这个订单了。",
            (AlreadyAccepted, Lang::En) => "You have already accepted this order.",
            (NotAccepted, Lang::Zh) => "您没有接这个订单，不能执行此操作。",
            (NotAccepted, Lang::En) => "You have not accepted this order, so you cannot do this.",
            (NotAVolunteer, Lang::Zh) => "只有登记的志愿者才能接单。",
            (NotAVolunteer, Lang::En) => "Only registered volunteers can take orders.",
            (VolunteerNotVerified, Lang::Zh) => "您的志愿者身份尚未经工作人员审核，审核通过后才能接单。",
            (VolunteerNotVerified, Lang::En) => "Your volunteer registration has not been verified by staff yet; you can take orders once it is.",
            (AlreadyCheckedIn, Lang::Zh) => "您已经签到过这次服务了。",
            (AlreadyCheckedIn, Lang::En) => "You have already checked in for this visit.",
            (NotCheckedIn, Lang::Zh) => "您还没有签到，不能签退。",
            (NotCheckedIn, Lang::En) => "You have not checked in, so you cannot check out.",
            (PinIncorrect, Lang::Zh) => "密码不正确，请老人再输入一次。",
            (PinIncorrect, Lang::En) => "The PIN is not correct. Please enter it again.",
            (PinNotSet, Lang::Zh) => "这位居民还没有设置确认密码，请由家属在应用中确认或联系工作人员。",
            (PinNotSet, Lang::En) => "This resident has no PIN yet; a family member can confirm in the app, or ask staff.",
            (GiftNotAllowed, Lang::Zh) => "按照本项目规则，时间只能赠送给{allowed_zh}；{to}不在此范围内。",
            (GiftNotAllowed, Lang::En) => "Under this programme's rules hours may only be given to {allowed_en}; {to} is not.",
            (InsufficientBalance, Lang::Zh) => "余额不足：当前余额{balance}，需要{needed}。",
            (InsufficientBalance, Lang::En) => "Not enough hours: the balance is {balance}, {needed} is needed.",
            (BalanceCapExceeded, Lang::Zh) => "对方账户余额将超过上限{cap}，无法转入。",
            (BalanceCapExceeded, Lang::En) => "The receiving account would exceed its cap of {cap}.",
            (UnderMinSpendAge, Lang::Zh) => "按照本项目规则，年满{min_age}周岁才能使用时间兑换服务（当前{age}周岁）。如有特殊困难，请工作人员登记困难情况。",
            (UnderMinSpendAge, Lang::En) => "Under this programme's rules hours can be spent from age {min_age} (this member is {age}). Staff can record a hardship exception.",
            (OverdraftLimit, Lang::Zh) => "余额不足以支付这项服务：余额{balance}，预计需要{needed}，最多可透支{limit}。",
            (OverdraftLimit, Lang::En) => "The balance cannot pay for this service: balance {balance}, expected {needed}, overdraft limit {limit}.",
            (ActivityFull, Lang::Zh) => "活动名额已满（{capacity}人）。",
            (ActivityFull, Lang::En) => "The activity is full ({capacity} places).",
            (AlreadySignedUp, Lang::Zh) => "已经报名过这个活动了。",
            (AlreadySignedUp, Lang::En) => "Already signed up for this activity.",
            (NotSignedUp, Lang::Zh) => "{member}没有报名这个活动。",
            (NotSignedUp, Lang::En) => "{member} did not sign up for this activity.",
            (AlreadyRated, Lang::Zh) => "这个订单已经评价过了。",
            (AlreadyRated, Lang::En) => "This order has already been rated.",
            (AlreadyReversed, Lang::Zh) => "这笔记录已经冲正过了，不能重复冲正。",
            (AlreadyReversed, Lang::En) => "This transfer has already been reversed.",
            (AlreadyCredited, Lang::Zh) => "这次服务的时间已经记入账户，不会重复记账。",
            (AlreadyCredited, Lang::En) => "The hours for this visit were already credited; they are never credited twice.",
            (DuplicatePhone, Lang::Zh) => "手机号{phone}已被登记。",
            (DuplicatePhone, Lang::En) => "The phone number {phone} is already registered.",
            (Duplicate, Lang::Zh) => "{entity}已存在（{id}）。",
            (Duplicate, Lang::En) => "The {entity} {id} already exists.",
            (LedgerAppendOnly, Lang::Zh) => "账本记录不能修改或删除，请用冲正记录更正。",
            (LedgerAppendOnly, Lang::En) => "Ledger entries are never edited or deleted; correct them with a reversing transfer.",
            (UnbalancedTransfer, Lang::Zh) => "记账不平衡（合计{sum}分钟），已拒绝。",
            (UnbalancedTransfer, Lang::En) => "The transfer does not balance (sums to {sum} minutes) and was refused.",
            (DeviceNotInitialised, Lang::Zh) => "本机数据库还没有初始化，请先运行 timebank init。",
            (DeviceNotInitialised, Lang::En) => "This device's database is not initialised yet; run `timebank init` first.",
            (CsvInvalid, Lang::Zh) => "导入文件有{count}行错误，没有导入任何数据。请修改后重新导入。",
            (CsvInvalid, Lang::En) => "The file has {count} bad rows; nothing was imported. Fix them and import again.",
            (Database, Lang::Zh) => "数据库出错，刚才的操作没有保存。请重试；如果反复出现，请联系技术人员。",
            (Database, Lang::En) => "A database error occurred and the change was not saved. Try again; if it keeps happening, call IT.",
            (Io, Lang::Zh) => "读写文件失败：{detail}",
            (Io, Lang::En) => "Could not read or write a file: {detail}",
            (ServerUnreachable, Lang::Zh) => "连不上城市服务器。数据已保存在本机，恢复连接后会自动同步。",
            (ServerUnreachable, Lang::En) => "The city server cannot be reached. Everything is saved on this device and syncs when the connection is back.",
            (ServerRefused, Lang::Zh) => "城市服务器拒绝了请求（{status}）：{detail}",
            (ServerRefused, Lang::En) => "The city server refused the request ({status}): {detail}",
            (ResyncRequired, Lang::Zh) => "本机太久没有同步，需要从城市服务器重新下载全部数据；未上传的修改会保留。",
            (ResyncRequired, Lang::En) => "This device has not synced for too long and must download everything from the city server again; changes not yet sent are kept.",
            (SignInRequired, Lang::Zh) => "请先选择您的名字并输入密码登录。",
            (SignInRequired, Lang::En) => "Please sign in: choose your name and enter your PIN.",
            (TooManyPinAttempts, Lang::Zh) => "密码连续输错次数太多，请{minutes}分钟后再试，或请工作人员帮助。",
            (TooManyPinAttempts, Lang::En) => "Too many wrong PINs in a row. Try again in {minutes} minutes, or ask staff for help.",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh_cn" => Ok(Lang::Zh),
            "en" | "en-us" | "en-gb" => Ok(Lang::En),
            other => Err(format!("unknown language '{other}' (use zh or en)")),
        }
    }
}

/// A refusal or failure of the core.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[error("{code:?}: {detail:?}")]
pub struct CoreError {
    pub code: Code,
    pub detail: BTreeMap<String, String>,
    /// Extra structured data, e.g. every bad row of an import.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    pub fn new(code: Code) -> Self {
        Self {
            code,
            detail: BTreeMap::new(),
            data: None,
        }
    }
    pub fn with(mut self, k: &str, v: impl ToString) -> Self {
        self.detail.insert(k.to_owned(), v.to_string());
        self
    }
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
    pub fn not_found(entity: &str, id: &str) -> Self {
        Self::new(Code::NotFound)
            .with("entity", entity)
            .with("entity_zh", zh_label(entity))
            .with("id", id)
    }
    /// `action` in English ("register members"); its Chinese is looked up.
    pub fn forbidden(action: &str) -> Self {
        Self::new(Code::Forbidden)
            .with("action", action)
            .with("action_zh", zh_label(action))
    }
    /// Bad input: `field` names what was wrong; both languages are given.
    pub fn invalid(field: &str, reason_zh: &str, reason_en: &str) -> Self {
        Self::new(Code::InvalidInput)
            .with("field", field)
            .with("field_zh", zh_label(field))
            .with("reason_zh", reason_zh)
            .with("reason_en", reason_en)
    }
    /// Whole minutes as a parameter, written for people in each language.
    pub fn with_minutes(self, k: &str, minutes: i64) -> Self {
        self.with2(
            k,
            crate::domain::format_minutes(minutes, true),
            crate::domain::format_minutes(minutes, false),
        )
    }
    /// `illegal_transition`: `action` cannot be done in status `from` (an order status or an
    /// activity or flag status, as stored).
    pub fn illegal(from: &str, action: &str) -> Self {
        let from_zh = crate::domain::OrderStatus::parse(from)
            .map(|s| s.label_zh())
            .unwrap_or_else(|| zh_label(from));
        Self::new(Code::IllegalTransition)
            .with("status", from)
            .with2("from", from_zh, from.replace('_', " "))
            .with2("action", zh_label(action), action.replace('_', " "))
    }
    /// Set a parameter in both languages (`k_zh` and `k_en`; the message picks its own).
    pub fn with2(self, k: &str, zh: impl ToString, en: impl ToString) -> Self {
        self.with(&format!("{k}_zh"), zh)
            .with(&format!("{k}_en"), en)
    }
    /// The plain message in the given language. A parameter `k_zh` / `k_en` fills `{k}` in
    /// that language; a plain `k` fills it in both.
    pub fn message(&self, lang: Lang) -> String {
        let mut s = self.code.template(lang).to_owned();
        let suffix = match lang {
            Lang::Zh => "_zh",
            Lang::En => "_en",
        };
        for (k, v) in &self.detail {
            if let Some(base) = k.strip_suffix(suffix) {
                s = s.replace(&format!("{{{base}}}"), v);
            }
        }
        // Words the core names in English get their Chinese even where no `_zh` was given.
        if lang == Lang::Zh {
            for k in ["entity", "action", "field"] {
                if let Some(v) = self.detail.get(k) {
                    s = s.replace(&format!("{{{k}}}"), zh_label(v));
                }
            }
        }
        for (k, v) in &self.detail {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
    /// The wire form: `{ "code": ..., "detail": {...}, "message": ... }`.
    pub fn to_wire(&self, lang: Lang) -> serde_json::Value {
        let mut v = serde_json::json!({
            "code": self.code,
            "detail": self.detail,
            "message": self.message(lang),
        });
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }
}

impl From<sea_orm::DbErr> for CoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        let text = e.to_string();
        if text.contains("ledger_append_only") {
            return CoreError::new(Code::LedgerAppendOnly);
        }
        tracing::error!(error = %text, "database error");
        CoreError::new(Code::Database).with("internal", text)
    }
}

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        CoreError::new(Code::Io).with("detail", e)
    }
}

/// Chinese for the English words the core puts in messages (actions, fields, entities, order
/// events and statuses). Unknown words get a neutral phrase rather than English in Chinese.
pub fn zh_label(en: &str) -> &'static str {
    match en {
        // actions
        "act as a deactivated member" => "以已停用的身份操作",
        "assign volunteers" => "指派志愿者",
        "cancel this order" => "取消这个订单",
        "change the programme rules" => "修改项目规则",
        "confirm a visit for this resident" => "为这位居民确认服务",
        "confirm visits as staff" => "以工作人员身份确认服务",
        "correct the ledger" => "更正账目",
        "decide on held hours" => "处理暂扣的时间",
        "dispute this visit" => "对这次服务提出异议",
        "edit another member's profile" => "修改别人的资料",
        "edit the service catalogue" => "修改服务目录",
        "export all data" => "导出全部数据",
        "export reports" => "导出报表",
        "grant staff or administrator roles" => "授予工作人员或管理员身份",
        "handle safeguarding reports" => "处理安全关怀报告",
        "import members" => "导入居民和志愿者",
        "list every order of a community" => "查看社区的全部订单",
        "organise activities" => "组织活动",
        "rate this service" => "评价这次服务",
        "read another member's inbox" => "查看别人的消息",
        "read safeguarding reports" => "查看安全关怀报告",
        "read the audit trail" => "查看操作记录",
        "record a hardship exception" => "登记困难情况",
        "record family links" => "登记亲属关系",
        "register members" => "登记居民和志愿者",
        "request help for this resident" => "为这位居民求助",
        "resolve disputes" => "处理异议",
        "respond to feedback" => "回复评价",
        "run the scheduled rules" => "运行定时规则",
        "see another member's time account" => "查看别人的时间账户",
        "see held hours" => "查看暂扣的时间",
        "see residents' personal data" => "查看居民的个人信息",
        "see this order" => "查看这个订单",
        "set another member's PIN" => "设置别人的密码",
        "change a staff member's PIN away from a center's workstation" => {
            "在服务中心以外的设备上修改工作人员的密码"
        }
        "sign in as staff away from a center's workstation" => {
            "在服务中心以外的设备上以工作人员身份登录（请到服务中心的电脑上登录）"
        }
        "sign up other members" => "替别人报名",
        "take attendance" => "记录活动签到",
        "verify volunteers" => "审核志愿者",
        "leave a note on an order you did not serve" => "给不是您服务的订单留言",
        "sync without a valid device token (enrol the device first)" => {
            "在没有登记的设备上同步（请先登记设备）"
        }
        "enrol with a used or expired code" => "使用已用过或已过期的登记码",
        "enrol with this code (unknown code)" => "使用这个登记码（登记码不存在）",
        // order events and other steps
        "accept" => "接单",
        "release" => "放弃订单",
        "check_in" => "签到",
        "check_out" => "签退",
        "confirm" => "确认服务",
        "dispute" => "提出异议",
        "resolve" => "处理异议",
        "cancel" => "取消",
        "expire" => "过期",
        "decide" => "处理",
        "sign_up" => "报名",
        "attendance" => "记录签到",
        "rate" => "评价",
        // statuses of activities and held hours
        "open" => "进行中",
        "closed" => "已结束",
        "approved" => "已批准",
        "dismissed" => "已驳回",
        // fields
        "name" => "姓名",
        "phone" => "电话",
        "date_of_birth" => "出生日期",
        "roles" => "身份",
        "volunteer" => "志愿者资料",
        "center_id" => "服务中心",
        "home_community_id" | "community" | "communities" => "社区",
        "pin" | "pin_hash" => "密码",
        "description" => "需求描述",
        "place_hint" => "大致位置",
        "address" => "地址",
        "expected_minutes" => "预计时长",
        "volunteers_needed" => "需要的人数",
        "visits" => "服务次数",
        "window_end" => "结束时间",
        "rating" => "评分",
        "comment" => "留言",
        "minutes" => "时长",
        "to" => "接收人",
        "reason" => "原因",
        "note" => "说明",
        "title" => "活动名称",
        "capacity" => "名额",
        "credit_minutes" => "记入时间",
        "category" => "类别",
        "details" => "详细情况",
        "status" => "状态",
        "response" => "回复",
        "code" => "编号",
        "name_zh" => "中文名称",
        "name_en" => "英文名称",
        "rounding_minutes" => "取整单位",
        "limits" => "上限",
        "max_per_visit" => "单次上限",
        "overdraft_limit" => "透支额度",
        "min_spend_age" => "兑换最低年龄",
        "auto_confirm_minutes" => "自动确认时间",
        "timezone" => "时区",
        "reverses_id" => "要冲正的记录",
        "visit" => "这次上门",
        "database" | "backup" => "数据库",
        "header" | "row" | "rows" | "mutation" | "mutations" => "数据",
        "schema_version" | "protocol" => "软件版本",
        "hlc" | "id" | "after" | "checksum" => "同步数据",
        "device" | "role" => "设备",
        // entities
        "member" | "account of member" => "成员",
        "order" | "open visit of order" => "订单",
        "account" | "issuing account of programme" => "账户",
        "activity" => "活动",
        "feedback" => "评价",
        "flag" => "暂扣记录",
        "inbox message" => "消息",
        "place" => "地点",
        "programme" => "项目",
        "report" => "报告",
        "service" => "服务项目",
        "service field" => "服务领域",
        "transfer" => "转账记录",
        "family link" => "亲属关系",
        "center" => "服务中心",
        _ => "这项内容",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_message_in_both_languages_with_its_params_filled() {
        let e = CoreError::new(Code::OrderFull).with("taken_by", "马军");
        assert_eq!(e.message(Lang::Zh), "这个订单已被马军接单，人数已满。");
        assert!(e.message(Lang::En).contains("马军"));
        assert_eq!(e.to_wire(Lang::En)["code"], "order_full");
    }

    #[test]
    fn database_errors_do_not_leak_into_the_message() {
        let e: CoreError = sea_orm::DbErr::Custom("UNIQUE constraint failed: x".into()).into();
        assert_eq!(e.code, Code::Database);
        assert!(!e.message(Lang::Zh).contains("UNIQUE"));
    }
}
