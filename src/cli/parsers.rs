//! The typed value parsers: principals, algorithms, kinds, dates, lengths of time, and
//! free text refused with control characters, never echoed raw.

use std::ffi::OsStr;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;

use gobuildkey::key::Algorithm;
use gobuildkey::machine::{Machine, MachineError};
use gobuildkey::principal::{Kind, Principal, PrincipalError};

use super::*;

pub(super) fn moment_parser(text: &str) -> Result<jiff::Timestamp, String> {
    gobuildkey::policy::parse_moment(text)
}

/// A `--keep-previous-until` value: a moment after now. A past one would end the grace
/// period before it started, cutting off the machine the flag was meant to keep working.
pub(super) fn future_moment_parser(text: &str) -> Result<jiff::Timestamp, String> {
    let moment = gobuildkey::policy::parse_moment(text)?;
    if moment <= jiff::Timestamp::now() {
        return Err(format!(
            "{moment} is in the past, so the previous key would stop verifying at once: give a later date, or a length with --keep-previous-for 7d"
        ));
    }
    Ok(moment)
}

/// A `--keep-previous-for` value: a positive length of time, in jiff's friendly or ISO 8601
/// form.
pub(super) fn duration_parser(text: &str) -> Result<jiff::Span, String> {
    match text.parse::<jiff::Span>() {
        Ok(span) if span.is_positive() => Ok(span),
        _ => Err(format!(
            "`{text}` is not a positive length of time: write it as 7d, 2w, 36h or \"1 week\""
        )),
    }
}

/// A timeout or window (`--command-timeout`, serve's timeouts): a positive length of time
/// in jiff's friendly form (10s, 500ms, 2m, "1m 30s") or ISO 8601's (PT10S), at most a week
/// (a longer one is a mistake, and some would overflow the clock).
pub(super) fn timeout_parser(text: &str) -> Result<std::time::Duration, String> {
    const WEEK: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
    text.trim()
        .parse::<jiff::SignedDuration>()
        .ok()
        .filter(|d| d.is_positive())
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| *d <= WEEK)
        .ok_or_else(|| {
            format!(
                "`{text}` is not a positive length of time of at most a week: write it as \
                 10s, 500ms, 2m or \"1m 30s\""
            )
        })
}

/// A `--clock-skew` value: a length of time from 0s to an hour (a clock further off is
/// broken, and a token would live that much longer than its admin said).
pub(super) fn skew_parser(text: &str) -> Result<std::time::Duration, String> {
    text.trim()
        .parse::<jiff::SignedDuration>()
        .ok()
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| *d <= gobuildkey::token::MAX_CLOCK_SKEW)
        .ok_or_else(|| {
            format!("`{text}` is not a length of time from 0s to 1h: write it as 0s, 60s or 5m")
        })
}

pub(super) fn kind_parser() -> impl TypedValueParser<Value = Option<Kind>> {
    PossibleValuesParser::new(["host", "user", "other", "any"]).map(|name| {
        [Kind::Host, Kind::User, Kind::Other]
            .into_iter()
            .find(|kind| kind.name() == name)
    })
}

pub(super) fn alg_parser() -> impl TypedValueParser<Value = Algorithm> {
    PossibleValuesParser::new(Algorithm::ALL.map(Algorithm::name)).try_map(|name| name.parse())
}

/// A value parser for free text: `parse`, after refusing a value with control characters
/// without repeating it. clap's refusal repeats the value as typed, and a newline or a
/// terminal's escape codes in it would reach the terminal (principals have their own
/// parser, which shows them escaped).
#[derive(Clone, Copy)]
pub(super) struct Plain<T>(pub(super) fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Plain<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        // ASCII whitespace at the ends (a newline after a value read from a file) is the
        // parser's to trim or refuse, and harmless to repeat; any other control character
        // (U+0085 too) is not repeated.
        let text = value.to_string_lossy();
        let inner = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if inner.chars().any(char::is_control) {
            let option = arg.map_or_else(|| "the value".to_owned(), |arg| format!("'{arg}'"));
            let mut cmd = cmd.clone();
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value for {option}: it holds control characters (a line break, \
                     a tab, a terminal's escape codes), not shown here; write it on one line"
                ),
            )
            .format(&mut cmd));
        }
        let parse = self.0;
        clap::builder::StringValueParser::new()
            .try_map(move |text| parse(&text))
            .parse_ref(cmd, arg, value)
    }
}

/// Parses a principal, refusing any that breaks the rule with a usage error (exit 2) whose
/// message states the rule and shows the value escaped.
#[derive(Clone, Debug)]
pub(super) struct PrincipalParser;

impl TypedValueParser for PrincipalParser {
    type Value = Principal;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Principal, clap::Error> {
        if looks_like_key(value) {
            let mut cmd = cmd.clone();
            return Err(
                clap::Error::raw(ErrorKind::ValueValidation, KEY_ON_COMMAND_LINE).format(&mut cmd),
            );
        }
        let parsed = match value.to_str() {
            Some(text) => Principal::new(text),
            None => Err(PrincipalError::new(&value.to_string_lossy())),
        };
        parsed.map_err(|e| {
            // `Error::raw` keeps clap from echoing the raw value, which may hold escape codes.
            let mut cmd = cmd.clone();
            clap::Error::raw(ErrorKind::ValueValidation, e).format(&mut cmd)
        })
    }
}

/// A machine name ([`Machine::RULE`]), refused without echoing it (it may hold escape codes).
#[derive(Clone, Debug)]
pub(super) struct MachineParser;

impl TypedValueParser for MachineParser {
    type Value = Machine;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Machine, clap::Error> {
        let parsed = match value.to_str() {
            Some(text) => Machine::new(text),
            None => Err(MachineError::new(&value.to_string_lossy())),
        };
        parsed.map_err(|e| {
            let mut cmd = cmd.clone();
            clap::Error::raw(ErrorKind::ValueValidation, e).format(&mut cmd)
        })
    }
}

/// A `--reason`: one line of at most 1000 characters.
pub(super) fn reason_parser(text: &str) -> Result<String, String> {
    if text.chars().count() > 1000 {
        return Err("a reason has at most 1000 characters".into());
    }
    if text.chars().any(char::is_control) {
        return Err("a reason is one line, without control characters".into());
    }
    Ok(text.to_owned())
}
