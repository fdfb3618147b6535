//! Every write of the time bank is one [`Command`]. A command carries the ids of what it
//! creates, so that applying it again (on the city server, or after a retry) creates the same
//! rows. The serialized command is what the sync outbox stores: secrets are never serialized.
use crate::domain::{ConfirmMethod, Relation, Rules};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "name", content = "args", rename_all = "snake_case")]
pub enum Command {
    RegisterMember(RegisterMember),
    UpdateMember(UpdateMember),
    LinkFamily {
        member_id: String,
        relative_id: String,
        relation: Relation,
    },
    SetVetting {
        member_id: String,
        vetting: crate::domain::Vetting,
    },
    /// The PIN is hashed before the command is built; only the hash is stored or sent.
    SetPin {
        member_id: String,
        pin_hash: String,
    },
    SetHardship {
        member_id: String,
        hardship: bool,
    },
    PostOrder(PostOrder),
    AcceptOrder {
        order_id: String,
    },
    ReleaseOrder {
        order_id: String,
    },
    AssignVolunteer {
        order_id: String,
        volunteer_id: String,
    },
    CheckIn {
        order_id: String,
        /// Filled on the device when the command is executed: the visit checked in to. The
        /// city server refuses it when that visit was finished elsewhere meanwhile (a
        /// recurring order moved on to its next visit), instead of checking the volunteer in
        /// to the next visit, days early; the check-out then holds the help for staff.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_id: Option<String>,
    },
    CheckOut {
        order_id: String,
        note: Option<String>,
        /// Filled on the device when the command is executed: the visit the volunteer served
        /// and when they checked in. If another device's acceptance won the order meanwhile,
        /// the city server keeps this help as a contested completion for staff instead of
        /// refusing it (help that happened is never refused).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        served: Option<Served>,
    },
    ConfirmVisit {
        order_id: String,
        method: ConfirmMethod,
        /// Checked against the beneficiary's PIN hash on the device; never serialized.
        #[serde(skip_serializing, default)]
        pin: Option<String>,
        /// Filled on the device when the command is executed: the volunteers whose service on
        /// the current visit it confirmed. If their acceptance lost to another device's, the
        /// city server puts the confirmation with their help held for staff, never on the
        /// other volunteer's visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirms: Option<Vec<String>>,
        /// Filled on the device when the command is executed: the visit it is about. The city
        /// server refuses it when that visit was confirmed or dealt with elsewhere meanwhile,
        /// instead of putting it on the order's next visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_id: Option<String>,
    },
    DisputeVisit {
        order_id: String,
        reason: String,
        /// Filled on the device when the command is executed: the visit it is about. The city
        /// server refuses it when that visit was confirmed or dealt with elsewhere meanwhile,
        /// instead of putting it on the order's next visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_id: Option<String>,
    },
    ResolveDispute {
        order_id: String,
        credit: bool,
        minutes: Option<i64>,
        note: String,
        /// Filled on the device when the command is executed: the visit it is about. The city
        /// server refuses it when that visit was confirmed or dealt with elsewhere meanwhile,
        /// instead of putting it on the order's next visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_id: Option<String>,
    },
    CancelOrder {
        order_id: String,
        reason: String,
    },
    /// Run the clock-driven rules: auto-confirm, expiry, urgent escalation.
    Tick,
    Gift {
        transfer_id: String,
        to_member_id: String,
        minutes: i64,
        note: String,
    },
    ReverseTransfer {
        transfer_id: String,
        reverses_id: String,
        reason: String,
    },
    ApproveHeld {
        flag_id: String,
        transfer_id: String,
        note: String,
    },
    DismissHeld {
        flag_id: String,
        note: String,
    },
    CreateActivity(CreateActivity),
    SignUpActivity {
        activity_id: String,
        member_id: String,
    },
    RecordAttendance {
        activity_id: String,
        member_ids: Vec<String>,
    },
    RateService {
        feedback_id: String,
        order_id: String,
        rating: i32,
        comment: String,
    },
    VolunteerNote {
        feedback_id: String,
        order_id: String,
        comment: String,
    },
    RespondFeedback {
        feedback_id: String,
        response: String,
    },
    FileSafeguarding(FileSafeguarding),
    UpdateSafeguarding {
        report_id: String,
        status: String,
        resolution: Option<String>,
    },
    MarkInboxRead {
        message_id: String,
    },
    SetRules(Rules),
    UpsertService {
        code: String,
        field_code: String,
        name_zh: String,
        name_en: String,
        active: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RegisterMember {
    pub member_id: String,
    pub name: String,
    pub phone: String,
    pub date_of_birth: NaiveDate,
    pub home_community_id: String,
    pub address: Option<String>,
    pub roles: Vec<crate::domain::Role>,
    #[serde(default)]
    pub hardship: bool,
    /// For staff: the center they work at.
    pub center_id: Option<String>,
    pub volunteer: Option<VolunteerProfile>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VolunteerProfile {
    pub service_fields: Vec<String>,
    pub skills: String,
    pub availability: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct UpdateMember {
    pub member_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// The values the editor saw before this edit, filled in by the device when the command is
    /// executed. On the city server a field whose value is no longer the one seen was edited
    /// concurrently elsewhere: last writer wins by HLC, and the other value is kept for staff.
    #[serde(default)]
    pub seen: Option<SeenProfile>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SeenProfile {
    pub name: String,
    pub phone: String,
    pub address: Option<String>,
}

/// What the device knew of a check-out: see `Command::CheckOut::served`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Served {
    pub visit_id: String,
    pub checked_in_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PostOrder {
    pub order_id: String,
    pub beneficiary_id: String,
    pub service_code: String,
    pub description: String,
    pub urgent: bool,
    pub place_hint: String,
    /// Exact address; defaults to the beneficiary's registered address.
    pub address: Option<String>,
    /// None: as soon as possible.
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub expected_minutes: i32,
    pub volunteers_needed: i32,
    /// Scheduled start of each visit; empty means one visit in the window (or ASAP).
    #[serde(default)]
    pub visits: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CreateActivity {
    pub activity_id: String,
    pub community_id: String,
    pub title: String,
    pub description: String,
    pub field_code: Option<String>,
    pub starts_at: i64,
    pub credit_minutes: i64,
    pub capacity: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct FileSafeguarding {
    pub report_id: String,
    pub subject_member_id: Option<String>,
    pub order_id: Option<String>,
    pub category: String,
    pub details: String,
}

impl Command {
    /// True when applying the command cannot change who may do what: no member's roles,
    /// active flag, center or anything else [`super::load_actor`] reads. The city server keeps
    /// an actor loaded for the next mutations of a pushed batch only after such commands.
    pub fn leaves_actors_unchanged(&self) -> bool {
        use Command as K;
        matches!(
            self,
            K::RegisterMember(_)
                | K::PostOrder(_)
                | K::AcceptOrder { .. }
                | K::ReleaseOrder { .. }
                | K::AssignVolunteer { .. }
                | K::CheckIn { .. }
                | K::CheckOut { .. }
                | K::ConfirmVisit { .. }
                | K::DisputeVisit { .. }
                | K::ResolveDispute { .. }
                | K::CancelOrder { .. }
                | K::Gift { .. }
                | K::ReverseTransfer { .. }
                | K::ApproveHeld { .. }
                | K::DismissHeld { .. }
                | K::CreateActivity(_)
                | K::SignUpActivity { .. }
                | K::RecordAttendance { .. }
                | K::RateService { .. }
                | K::VolunteerNote { .. }
                | K::RespondFeedback { .. }
                | K::FileSafeguarding(_)
                | K::UpdateSafeguarding { .. }
                | K::MarkInboxRead { .. }
        )
    }

    /// The command of a mutation from its name and arguments, as the outbox and a push keep
    /// them.
    pub fn from_parts(name: &str, args: serde_json::Value) -> serde_json::Result<Command> {
        serde_json::from_value(serde_json::json!({"name": name, "args": args}))
    }

    /// The mutation's name as stored in the outbox and the audit trail.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    }

    /// The arguments as stored in the outbox (secrets are skipped by serde).
    pub fn args(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .ok()
            .and_then(|mut v| v.get_mut("args").map(serde_json::Value::take))
            .unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_given_to_confirm_a_visit_is_never_serialized_into_the_outbox() {
        let c = Command::ConfirmVisit {
            visit_id: None,
            order_id: "o1".into(),
            method: ConfirmMethod::Pin,
            pin: Some("2468".into()),
            confirms: None,
        };
        let text = serde_json::to_string(&c).expect("json");
        assert!(!text.contains("2468"), "{text}");
        assert_eq!(c.name(), "confirm_visit");
        assert_eq!(c.args()["method"], "pin");
    }

    #[test]
    fn commands_round_trip_through_json() {
        let c = Command::Gift {
            transfer_id: "t".into(),
            to_member_id: "m".into(),
            minutes: 60,
            note: "给妈妈".into(),
        };
        let back: Command =
            serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("parse");
        assert_eq!(back, c);
        assert_eq!(Command::Tick.name(), "tick");
    }
}
