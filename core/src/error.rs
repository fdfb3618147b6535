//! Errors of the core. Every refusal carries a stable machine [`Code`] that front ends branch
//! on and translate; [`CoreError::message`] gives the plain message in zh-CN or en.
use serde::Serialize;
use std::collections::BTreeMap;

/// Stable machine codes. The wire form is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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
            (IllegalTransition, Lang::En) => "The order is {from}; it cannot be {action} now.",
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
            .with("id", id)
    }
    pub fn forbidden(action: &str) -> Self {
        Self::new(Code::Forbidden).with("action", action)
    }
    /// Bad input: `field` names what was wrong; both languages are given.
    pub fn invalid(field: &str, reason_zh: &str, reason_en: &str) -> Self {
        Self::new(Code::InvalidInput)
            .with("field", field)
            .with("reason_zh", reason_zh)
            .with("reason_en", reason_en)
    }
    /// The plain message in the given language.
    pub fn message(&self, lang: Lang) -> String {
        let mut s = self.code.template(lang).to_owned();
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
