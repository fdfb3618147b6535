//! Programme rules (set by administrators) and the pure calculations that apply them.
use super::types::{GiftPolicy, Payer};
use chrono::{Datelike, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Rules {
    pub payer: Payer,
    /// Served time is rounded to the nearest multiple of this many minutes (half up).
    pub rounding_minutes: i32,
    pub max_per_visit: i64,
    pub max_per_day: i64,
    /// No member balance may exceed this many minutes (Nanjing: 1,500 h).
    pub balance_cap: i64,
    /// How far below zero a member may go when paying for help.
    pub overdraft_limit: i64,
    pub min_spend_age: i32,
    pub gift_policy: GiftPolicy,
    pub signup_bonus: i64,
    pub auto_confirm_minutes: i32,
    pub urgent_escalation_minutes: i32,
    pub timezone: String,
}

impl Default for Rules {
    /// Hangzhou-style public-welfare defaults.
    fn default() -> Self {
        Rules {
            payer: Payer::Issuing,
            rounding_minutes: 15,
            max_per_visit: 4 * 60,
            max_per_day: 8 * 60,
            balance_cap: 1_500 * 60,
            overdraft_limit: 0,
            min_spend_age: 60,
            gift_policy: GiftPolicy::DirectRelatives,
            signup_bonus: 60,
            auto_confirm_minutes: 48 * 60,
            urgent_escalation_minutes: 30,
            timezone: "Asia/Shanghai".into(),
        }
    }
}

/// Why minutes of help that happened were held for staff instead of credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    MaxPerVisit,
    MaxPerDay,
    BalanceCap,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::MaxPerVisit => "max_per_visit",
            HoldReason::MaxPerDay => "max_per_day",
            HoldReason::BalanceCap => "balance_cap",
        }
    }
}

/// The split of one credit: what is credited now and what is held for staff, by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditSplit {
    pub credited: i64,
    pub held: Vec<(HoldReason, i64)>,
}

impl CreditSplit {
    pub fn total(&self) -> i64 {
        self.credited + self.held.iter().map(|(_, m)| m).sum::<i64>()
    }
}

impl Rules {
    /// Check the rules make sense; the message names the field.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str, &'static str)> {
        if !(1..=240).contains(&self.rounding_minutes) {
            return Err((
                "rounding_minutes",
                "取整单位须在1到240分钟之间",
                "must be 1 to 240 minutes",
            ));
        }
        if self.max_per_visit <= 0 || self.max_per_day <= 0 || self.balance_cap <= 0 {
            return Err((
                "limits",
                "上限必须大于0",
                "limits must be greater than zero",
            ));
        }
        if self.max_per_visit > self.max_per_day {
            return Err((
                "max_per_visit",
                "单次上限不能大于每日上限",
                "must not exceed the daily maximum",
            ));
        }
        if self.overdraft_limit < 0 || self.signup_bonus < 0 {
            return Err(("overdraft_limit", "不能为负数", "must not be negative"));
        }
        if !(0..=120).contains(&self.min_spend_age) {
            return Err((
                "min_spend_age",
                "年龄须在0到120之间",
                "must be between 0 and 120",
            ));
        }
        if self.auto_confirm_minutes <= 0 || self.urgent_escalation_minutes <= 0 {
            return Err((
                "auto_confirm_minutes",
                "时间必须大于0",
                "must be greater than zero",
            ));
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(("timezone", "未知的时区", "unknown time zone"));
        }
        Ok(())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Round served minutes to the programme's unit, half up. Nothing served, nothing credited.
    pub fn round(&self, minutes: i64) -> i64 {
        if minutes <= 0 {
            return 0;
        }
        let u = i64::from(self.rounding_minutes.max(1));
        (minutes + u / 2) / u * u
    }

    /// Split a credit of `minutes` (already rounded) for a member who was credited
    /// `credited_today` service minutes today and holds `balance`. Nothing is lost: what the
    /// limits do not allow is held for staff with the reason.
    pub fn split_credit(&self, minutes: i64, credited_today: i64, balance: i64) -> CreditSplit {
        let mut left = minutes.max(0);
        let mut held = Vec::new();
        let mut hold = |left: &mut i64, allowed: i64, why: HoldReason| {
            let allowed = allowed.max(0);
            if *left > allowed {
                held.push((why, *left - allowed));
                *left = allowed;
            }
        };
        hold(&mut left, self.max_per_visit, HoldReason::MaxPerVisit);
        hold(
            &mut left,
            self.max_per_day - credited_today,
            HoldReason::MaxPerDay,
        );
        hold(
            &mut left,
            self.balance_cap - balance,
            HoldReason::BalanceCap,
        );
        CreditSplit {
            credited: left,
            held,
        }
    }

    /// Whether a member of `age` may spend hours; `Err((min_age, age))` if not.
    pub fn may_spend(&self, age: i32, hardship: bool) -> Result<(), (i32, i32)> {
        if age >= self.min_spend_age || hardship {
            Ok(())
        } else {
            Err((self.min_spend_age, age))
        }
    }

    /// Whether paying `needed` from `balance` stays within the overdraft limit.
    pub fn may_pay(&self, balance: i64, needed: i64) -> bool {
        balance - needed >= -self.overdraft_limit
    }

    /// The programme-local date of an instant.
    pub fn local_date(&self, at_ms: i64) -> NaiveDate {
        self.tz()
            .timestamp_millis_opt(at_ms)
            .single()
            .map(|d| d.date_naive())
            .unwrap_or_default()
    }

    /// Start and end (exclusive), in ms, of the programme-local day containing `at_ms`.
    pub fn local_day_bounds(&self, at_ms: i64) -> (i64, i64) {
        let tz = self.tz();
        let d = self.local_date(at_ms);
        let start = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .and_then(|n| tz.from_local_datetime(&n).earliest())
                .map(|t| t.timestamp_millis())
                .unwrap_or(at_ms)
        };
        (start(d), start(d.succ_opt().unwrap_or(d)))
    }
}

/// Full years of age on `today`.
pub fn age_on(date_of_birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - date_of_birth.year();
    if (today.month(), today.day()) < (date_of_birth.month(), date_of_birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn served_time_rounds_to_the_nearest_unit_half_up() {
        let r = Rules::default();
        assert_eq!(r.round(52), 45);
        assert_eq!(r.round(53), 60);
        assert_eq!(r.round(7), 0);
        assert_eq!(r.round(8), 15);
        assert_eq!(r.round(-5), 0);
    }

    #[test]
    fn credit_over_the_visit_maximum_is_held_not_lost() {
        let r = Rules {
            max_per_visit: 120,
            ..Rules::default()
        };
        let s = r.split_credit(180, 0, 0);
        assert_eq!(s.credited, 120);
        assert_eq!(s.held, vec![(HoldReason::MaxPerVisit, 60)]);
        assert_eq!(s.total(), 180);
    }

    #[test]
    fn daily_maximum_counts_what_was_credited_earlier_that_day() {
        let r = Rules {
            max_per_day: 240,
            ..Rules::default()
        };
        let s = r.split_credit(120, 180, 0);
        assert_eq!(
            (s.credited, s.held.clone()),
            (60, vec![(HoldReason::MaxPerDay, 60)])
        );
    }

    #[test]
    fn balance_cap_holds_what_would_go_over_it() {
        let r = Rules {
            balance_cap: 1_000,
            ..Rules::default()
        };
        let s = r.split_credit(60, 0, 990);
        assert_eq!(
            (s.credited, s.held.clone()),
            (10, vec![(HoldReason::BalanceCap, 50)])
        );
        let s = r.split_credit(60, 0, 1_200);
        assert_eq!(s.credited, 0);
        assert_eq!(s.total(), 60);
    }

    #[test]
    fn spending_needs_the_minimum_age_unless_hardship_is_recorded() {
        let r = Rules::default();
        assert_eq!(r.may_spend(59, false), Err((60, 59)));
        assert_eq!(r.may_spend(59, true), Ok(()));
        assert_eq!(r.may_spend(60, false), Ok(()));
    }

    #[test]
    fn overdraft_limit_bounds_paying() {
        let r = Rules {
            overdraft_limit: 60,
            ..Rules::default()
        };
        assert!(r.may_pay(0, 60));
        assert!(!r.may_pay(0, 61));
    }

    #[test]
    fn age_counts_full_years_only() {
        assert_eq!(age_on(d("1946-12-01"), d("2026-11-28")), 79);
        assert_eq!(age_on(d("1946-11-28"), d("2026-11-28")), 80);
    }

    #[test]
    fn the_day_is_the_programme_local_day() {
        let r = Rules::default();
        // 2026-11-28 17:00 UTC is already 2026-11-29 01:00 in Shanghai.
        let at = 1_795_885_200_000; // 2026-11-28T17:00:00Z
        assert_eq!(r.local_date(at), d("2026-11-29"));
        let (s, e) = r.local_day_bounds(at);
        assert_eq!(e - s, 86_400_000);
        assert!(s <= at && at < e);
    }

    #[test]
    fn nonsense_rules_are_refused_with_the_field_named() {
        let r = Rules {
            max_per_visit: 600,
            max_per_day: 300,
            ..Rules::default()
        };
        assert_eq!(r.validate().map_err(|e| e.0), Err("max_per_visit"));
        let r = Rules {
            timezone: "Mars/Olympus".into(),
            ..Rules::default()
        };
        assert_eq!(r.validate().map_err(|e| e.0), Err("timezone"));
    }
}
