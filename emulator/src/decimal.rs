//! Exact decimal numbers of number, currency and percent fields. Salesforce keeps up to 18
//! digits; an f64 holds 15-17, so a stored value is its digits and a scale, and goes back
//! out with every digit.

use std::cmp::Ordering;
use std::fmt;

/// The most digits a stored number has (Salesforce's precision limit).
const MAX_DIGITS: usize = 18;

/// `units / 10^scale`, normalized: no trailing zero in the fraction, so equal values are
/// equal structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dec {
    units: i64,
    scale: u8,
}

impl Dec {
    /// Plain (`-12.50`) or exponent (`1.5E3`) decimal text; None when it is no number or
    /// needs more than 18 digits.
    pub fn parse(s: &str) -> Option<Dec> {
        let s = s.trim();
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (negative, body) = match mantissa.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits = format!("{int}{frac}");
        let mut scale = frac.len() as i64 - exp as i64;
        if scale < 0 {
            if scale < -(MAX_DIGITS as i64) {
                return None;
            }
            digits.push_str(&"0".repeat((-scale) as usize));
            scale = 0;
        }
        // Trailing zeros of the fraction carry nothing.
        while scale > 0 && digits.ends_with('0') {
            digits.pop();
            scale -= 1;
        }
        let digits = digits.trim_start_matches('0');
        if digits.len() > MAX_DIGITS || scale > u8::MAX as i64 {
            return None;
        }
        let units: i64 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        Some(Dec { units: if negative { -units } else { units }, scale: if units == 0 { 0 } else { scale as u8 } })
    }

    /// Rounded half away from zero to `scale` fraction digits, as Salesforce stores a value.
    pub fn round(self, scale: u32) -> Dec {
        if u32::from(self.scale) <= scale {
            return self;
        }
        let div = 10i64.pow(u32::from(self.scale) - scale);
        let (q, r) = (self.units / div, self.units % div);
        let q = if r.abs() * 2 >= div { q + self.units.signum() } else { q };
        Dec::normalized(q, scale as u8)
    }

    fn normalized(mut units: i64, mut scale: u8) -> Dec {
        while scale > 0 && units % 10 == 0 {
            units /= 10;
            scale -= 1;
        }
        Dec { units, scale: if units == 0 { 0 } else { scale } }
    }

    /// Digits left of the point (0 for `0.5`).
    pub fn int_digits(self) -> u32 {
        let int = self.units.unsigned_abs() / 10u64.pow(u32::from(self.scale));
        if int == 0 {
            0
        } else {
            int.ilog10() + 1
        }
    }

    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Dec) -> Option<Ordering> {
        // Compared on a common scale in i128: exact for 18 digits and any scale we keep.
        let s = self.scale.max(other.scale);
        let widen = |d: &Dec| i128::from(d.units).checked_mul(10i128.checked_pow(u32::from(s - d.scale))?);
        match (widen(self), widen(other)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }
}

/// Salesforce's JSON form of a number field: every digit, `5.0` for a whole value.
impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        if scale == 0 {
            return write!(f, "{sign}{abs}.0");
        }
        let padded = format!("{abs:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap_or_else(|| panic!("{s} parses"))
    }

    #[test]
    fn eighteen_digits_stay_exact() {
        assert_eq!(d("123456789012345678").to_string(), "123456789012345678.0");
        assert_eq!(d("1234567890123456.78").to_string(), "1234567890123456.78");
        assert_eq!(d("-0.000000000000000001").to_string(), "-0.000000000000000001");
        assert!(Dec::parse("1234567890123456789").is_none(), "19 digits");
    }

    #[test]
    fn forms_of_the_same_value_are_equal() {
        assert_eq!(d("5"), d("5.000"));
        assert_eq!(d("1.5E3"), d("1500"));
        assert_eq!(d("-0"), d("0.0"));
        assert_eq!(d("0.0").to_string(), "0.0");
        assert_eq!(d("+.5").to_string(), "0.5");
        assert!(Dec::parse("1.2.3").is_none() && Dec::parse("").is_none() && Dec::parse("e5").is_none());
    }

    #[test]
    fn rounds_half_away_from_zero_and_counts_integer_digits() {
        assert_eq!(d("2.345").round(2), d("2.35"));
        assert_eq!(d("-2.345").round(2), d("-2.35"));
        assert_eq!(d("2.344").round(2), d("2.34"));
        assert_eq!(d("9.99").round(0), d("10"));
        assert_eq!(d("1234567890123456.78").int_digits(), 16);
        assert_eq!(d("0.5").int_digits(), 0);
        assert!(d("10") > d("9.99") && d("-1") < d("0.5"));
    }
}
