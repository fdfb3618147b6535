//! Small closed vocabularies of the domain, stored as snake_case text.
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$v),)+ _ => None } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// What a member may do. One member can hold several.
    Role { Resident = "resident", Family = "family", Volunteer = "volunteer", Staff = "staff", Admin = "admin" }
);
text_enum!(
    /// How `relative` is related to `member` in a family link.
    Relation { Spouse = "spouse", Child = "child", Parent = "parent", Grandchild = "grandchild", Grandparent = "grandparent", Other = "other" }
);
text_enum!(Vetting { Registered = "registered", Verified = "verified", Suspended = "suspended" });
text_enum!(PlaceLevel { City = "city", District = "district", Subdistrict = "subdistrict", Community = "community" });
text_enum!(
    /// Who pays for a service: the programme's issuing account (public welfare, as in
    /// Hangzhou) or the beneficiary's own account (classic reciprocal time banking).
    Payer { Issuing = "issuing", Beneficiary = "beneficiary" }
);
text_enum!(GiftPolicy { Spouse = "spouse", DirectRelatives = "direct_relatives", Anyone = "anyone" });
text_enum!(AccountKind { Member = "member", CommunityFund = "community_fund", Issuing = "issuing" });
text_enum!(TransferKind { ServiceCredit = "service_credit", Spend = "spend", Gift = "gift", SignupBonus = "signup_bonus", Correction = "correction" });
text_enum!(ConfirmMethod { Pin = "pin", App = "app", Staff = "staff", Auto = "auto", Resolution = "resolution" });

impl Relation {
    /// The relation seen from the other side of the link.
    pub fn inverse(self) -> Relation {
        match self {
            Relation::Spouse => Relation::Spouse,
            Relation::Child => Relation::Parent,
            Relation::Parent => Relation::Child,
            Relation::Grandchild => Relation::Grandparent,
            Relation::Grandparent => Relation::Grandchild,
            Relation::Other => Relation::Other,
        }
    }
    pub fn is_direct(self) -> bool {
        !matches!(self, Relation::Other)
    }
}

impl GiftPolicy {
    /// Whether hours may be given to someone related by `relation` (None: not family).
    pub fn allows(self, relation: Option<Relation>) -> bool {
        match self {
            GiftPolicy::Anyone => true,
            GiftPolicy::DirectRelatives => relation.is_some_and(Relation::is_direct),
            GiftPolicy::Spouse => relation == Some(Relation::Spouse),
        }
    }
    pub fn describe(self, zh: bool) -> &'static str {
        match (self, zh) {
            (GiftPolicy::Spouse, true) => "配偶",
            (GiftPolicy::Spouse, false) => "a spouse",
            (GiftPolicy::DirectRelatives, true) => "配偶和直系亲属",
            (GiftPolicy::DirectRelatives, false) => "a spouse or direct relatives",
            (GiftPolicy::Anyone, true) => "任何人",
            (GiftPolicy::Anyone, false) => "anyone",
        }
    }
}

/// Format whole minutes as hours and minutes for people: `2小时30分` / `2 h 30 min`.
pub fn format_minutes(m: i64, zh: bool) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let a = m.unsigned_abs();
    let (h, r) = (a / 60, a % 60);
    match (zh, h, r) {
        (true, 0, r) => format!("{sign}{r}分钟"),
        (true, h, 0) => format!("{sign}{h}小时"),
        (true, h, r) => format!("{sign}{h}小时{r}分"),
        (false, 0, r) => format!("{sign}{r} min"),
        (false, h, 0) => format!("{sign}{h} h"),
        (false, h, r) => format!("{sign}{h} h {r} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip_through_their_stored_text() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Relation::parse("cousin"), None);
    }

    #[test]
    fn relations_invert_and_gift_policies_follow_them() {
        assert_eq!(Relation::Child.inverse(), Relation::Parent);
        assert!(GiftPolicy::DirectRelatives.allows(Some(Relation::Grandchild)));
        assert!(!GiftPolicy::DirectRelatives.allows(Some(Relation::Other)));
        assert!(!GiftPolicy::DirectRelatives.allows(None));
        assert!(!GiftPolicy::Spouse.allows(Some(Relation::Child)));
        assert!(GiftPolicy::Anyone.allows(None));
    }

    #[test]
    fn minutes_read_as_hours_and_minutes() {
        assert_eq!(format_minutes(150, true), "2小时30分");
        assert_eq!(format_minutes(-45, false), "-45 min");
        assert_eq!(format_minutes(120, false), "2 h");
    }
}
