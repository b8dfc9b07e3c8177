//! What a token grants: for each [`Action`], a list of channel [`Pattern`]s, read from
//! the claims `"subscribe"`, `"publish"`, `"presence"` and `"history"`.

use std::fmt;

/// What a client does with a channel (each has its own claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Receive its messages (every transport), polls and long-polls included.
    Subscribe,
    /// Publish to it (`POST /ch/NAME`, a native WebSocket's frames, `/ws` publish).
    Publish,
    /// See who is subscribed (`/ws` presence).
    Presence,
    /// Read its history (`/ws` history).
    History,
}

impl Action {
    /// The claim that grants it.
    pub fn claim(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::Presence => "presence",
            Self::History => "history",
        }
    }
}

/// One channel pattern: an exact name, or a prefix followed by `*` (`"chat:*"`: every
/// channel whose name starts with `chat:`; `"*"`: every channel).
#[derive(Clone, PartialEq, Eq)]
pub enum Pattern {
    /// This channel only.
    Exact(Box<str>),
    /// Every channel whose name starts with this.
    Prefix(Box<str>),
}

impl Pattern {
    /// Parses one pattern; `None` when it is empty or has a `*` anywhere but at its end.
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_suffix('*') {
            _ if s.is_empty() => None,
            Some(prefix) if !prefix.contains('*') => Some(Self::Prefix(prefix.into())),
            None if !s.contains('*') => Some(Self::Exact(s.into())),
            _ => None,
        }
    }

    /// Whether `channel` matches.
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Self::Exact(name) => **name == *channel,
            Self::Prefix(prefix) => channel.starts_with(&**prefix),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => write!(f, "{name:?}"),
            Self::Prefix(prefix) => write!(f, "\"{prefix}*\""),
        }
    }
}

/// The channel patterns a token grants, per action (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub subscribe: Box<[Pattern]>,
    pub publish: Box<[Pattern]>,
    pub presence: Box<[Pattern]>,
    pub history: Box<[Pattern]>,
}

impl Grants {
    /// The patterns for `action`.
    pub fn patterns(&self, action: Action) -> &[Pattern] {
        match action {
            Action::Subscribe => &self.subscribe,
            Action::Publish => &self.publish,
            Action::Presence => &self.presence,
            Action::History => &self.history,
        }
    }

    /// Whether `action` on `channel` is granted.
    pub fn allow(&self, action: Action, channel: &str) -> bool {
        self.patterns(action).iter().any(|p| p.matches(channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        let table: &[(&str, &str, Option<bool>)] = &[
            ("room", "room", Some(true)),
            ("room", "room2", Some(false)),
            ("chat:*", "chat:lobby", Some(true)),
            ("chat:*", "chat:", Some(true)),
            ("chat:*", "chatter", Some(false)),
            ("*", "anything:at:all", Some(true)),
            ("", "", None),
            ("a*b", "ab", None),
            ("**", "x", None),
            ("*a", "a", None),
        ];
        for &(pattern, channel, want) in table {
            let got = Pattern::parse(pattern).map(|p| p.matches(channel));
            assert_eq!(got, want, "{pattern:?} against {channel:?}");
        }
    }

    #[test]
    fn grants_are_per_action() {
        let g = Grants {
            subscribe: vec![Pattern::Prefix("chat:".into())].into(),
            publish: vec![Pattern::Exact("chat:lobby".into())].into(),
            ..Grants::default()
        };
        assert!(g.allow(Action::Subscribe, "chat:x"));
        assert!(!g.allow(Action::Publish, "chat:x"));
        assert!(g.allow(Action::Publish, "chat:lobby"));
        assert!(!g.allow(Action::Presence, "chat:lobby"));
        assert!(!g.allow(Action::History, "chat:lobby"));
        assert_eq!(format!("{:?}", g.subscribe), r#"["chat:*"]"#);
    }
}
