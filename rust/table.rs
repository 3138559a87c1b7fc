//! The registry table in plain Rust: name → (value, capability bits).
//!
//! Copy-on-write: the current contents are one immutable [`Snapshot`] behind an
//! [`ArcSwap`]. Readers load it without taking any lock (arc-swap's `load` borrows the
//! snapshot through a thread-local debt slot, so it does not even touch the shared
//! reference count); writers are serialized by a mutex, build a new snapshot and publish it
//! with one atomic pointer swap. A reader sees the table before or after a write, never a
//! half-made one.
//!
//! Names are Rust `str`s: byte order is code-point order, so sorting them sorts the way
//! Python sorts str. A Python str may hold a lone surrogate, which no Rust `str` can;
//! [`check_name`] therefore reads *generalized* UTF-8 (what Python's `"surrogatepass"`
//! encoding produces) and refuses such a name, so it never reaches the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};
use foldhash::fast::RandomState;

/// The longest acceptable name, in code points.
pub const MAX_NAME_LENGTH: usize = 256;

/// Why a name is not acceptable, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    Control,
    Surrogate,
    Whitespace,
}

impl NameProblem {
    /// The reason as the Python twin words it.
    pub fn reason(self) -> &'static str {
        match self {
            NameProblem::Empty => "must not be empty",
            NameProblem::TooLong => "must be at most 256 characters",
            NameProblem::Control => "must not contain control characters",
            NameProblem::Surrogate => "must not contain lone surrogates",
            NameProblem::Whitespace => "must not start or end with whitespace",
        }
    }
}

/// Checks a name given as generalized UTF-8 bytes: not empty, at most [`MAX_NAME_LENGTH`]
/// code points, no control character (Unicode Cc), no lone surrogate (not valid Unicode
/// text: it could not be logged or sent), no whitespace at either end.
pub fn check_name(name: &[u8]) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    // Every code point takes 1 to 4 bytes: only long byte strings need counting.
    if name.len() > MAX_NAME_LENGTH && code_point_count(name) > MAX_NAME_LENGTH {
        return Err(NameProblem::TooLong);
    }
    if CodePoints(name).any(|c| as_char(c).is_some_and(char::is_control)) {
        return Err(NameProblem::Control);
    }
    if CodePoints(name).any(|c| (0xD800..0xE000).contains(&c)) {
        return Err(NameProblem::Surrogate);
    }
    let first = CodePoints(name).next();
    let last = CodePoints(&name[last_start(name)..]).next();
    let spaced = |c: Option<u32>| c.and_then(as_char).is_some_and(char::is_whitespace);
    if spaced(first) || spaced(last) {
        return Err(NameProblem::Whitespace);
    }
    Ok(())
}

fn as_char(code: u32) -> Option<char> {
    char::from_u32(code) // None for a surrogate
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

fn code_point_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| !is_continuation(b)).count()
}

fn last_start(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| !is_continuation(b))
        .unwrap_or(0)
}

/// The code points of generalized UTF-8 bytes (malformed input yields garbage, never panics).
struct CodePoints<'a>(&'a [u8]);

impl Iterator for CodePoints<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (&lead, rest) = self.0.split_first()?;
        let (mut code, extra) = match lead {
            0x00..=0x7F => (u32::from(lead), 0),
            0xC0..=0xDF => (u32::from(lead & 0x1F), 1),
            0xE0..=0xEF => (u32::from(lead & 0x0F), 2),
            _ => (u32::from(lead & 0x07), 3),
        };
        let extra = extra.min(rest.len());
        for &b in &rest[..extra] {
            code = (code << 6) | u32::from(b & 0x3F);
        }
        self.0 = &rest[extra..];
        Some(code)
    }
}

/// One registered name's value and capability bits.
#[derive(Debug, Clone)]
pub struct Slot<V> {
    pub value: V,
    pub caps: u64,
}

/// An immutable view of the whole table at one version.
#[derive(Debug)]
pub struct Snapshot<V> {
    entries: HashMap<Arc<str>, Slot<V>, RandomState>,
    /// The same slots sorted by name, built once per write so that listing does not sort.
    ordered: Vec<(Arc<str>, Slot<V>)>,
    version: u64,
}

impl<V> Snapshot<V> {
    fn empty(version: u64) -> Self {
        Snapshot {
            entries: HashMap::default(),
            ordered: Vec::new(),
            version,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Slot<V>> {
        self.entries.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many writes the table had seen when this snapshot was published.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every slot, in no particular order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot<V>> {
        self.entries.values()
    }

    /// Every (name, slot), sorted by name.
    pub fn sorted(&self) -> Vec<(&str, &Slot<V>)> {
        self.sorted_where(|_| true)
    }

    /// The (name, slot) pairs whose capability bits include every bit of `mask`, sorted.
    pub fn sorted_with(&self, mask: u64) -> Vec<(&str, &Slot<V>)> {
        self.sorted_where(|slot| slot.caps & mask == mask)
    }

    fn sorted_where(&self, keep: impl Fn(&Slot<V>) -> bool) -> Vec<(&str, &Slot<V>)> {
        self.ordered
            .iter()
            .filter(|(_, slot)| keep(slot))
            .map(|(k, s)| (&**k, s))
            .collect()
    }
}

/// What a successful write hands back. `previous` is the snapshot it replaced: the caller
/// decides where it is dropped (for Python values: outside the writer lock, attached to the
/// interpreter), since dropping it may release the last reference to old values.
#[derive(Debug)]
pub struct Written<V> {
    pub version: u64,
    pub previous: Arc<Snapshot<V>>,
}

/// A refused insert (the name is taken and `replace` was false); the value comes back.
#[derive(Debug)]
pub struct AlreadyRegistered<V>(pub V);

/// name → (value, capability bits), with lock-free reads and serialized writes.
#[derive(Debug)]
pub struct Table<V> {
    current: ArcSwap<Snapshot<V>>,
    writer: Mutex<()>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            current: ArcSwap::from_pointee(Snapshot::empty(0)),
            writer: Mutex::new(()),
        }
    }
}

impl<V: Clone> Table<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot, without locking and without touching a shared counter.
    #[inline]
    pub fn snapshot(&self) -> Guard<Arc<Snapshot<V>>> {
        self.current.load()
    }

    /// Stores `value` as `name`; with `replace` false, refuses a name that is taken.
    pub fn insert(
        &self,
        name: &str,
        value: V,
        caps: u64,
        replace: bool,
    ) -> Result<Written<V>, AlreadyRegistered<V>> {
        let _writing = self.lock();
        let old = self.current.load_full();
        if !replace && old.contains(name) {
            return Err(AlreadyRegistered(value));
        }
        let mut entries = old.entries.clone();
        entries.insert(Arc::from(name), Slot { value, caps });
        Ok(self.publish(entries, old))
    }

    /// Removes `name`, returning its value with the write; None if it was not there.
    pub fn remove(&self, name: &str) -> Option<(V, Written<V>)> {
        let _writing = self.lock();
        let old = self.current.load_full();
        let mut entries = old.entries.clone();
        let removed = entries.remove(name)?;
        Some((removed.value, self.publish(entries, old)))
    }

    /// Removes everything (a write: the version moves on).
    pub fn clear(&self) -> Written<V> {
        let _writing = self.lock();
        let old = self.current.load_full();
        self.publish(HashMap::default(), old)
    }

    /// Empties the table without counting a write, returning what it held (for the
    /// garbage collector's clear, which breaks reference cycles).
    pub fn take(&self) -> Arc<Snapshot<V>> {
        let _writing = self.lock();
        let version = self.current.load().version;
        self.current.swap(Arc::new(Snapshot::empty(version)))
    }

    fn publish(
        &self,
        entries: HashMap<Arc<str>, Slot<V>, RandomState>,
        old: Arc<Snapshot<V>>,
    ) -> Written<V> {
        let version = old.version + 1;
        let mut ordered: Vec<_> = entries
            .iter()
            .map(|(k, s)| (Arc::clone(k), s.clone()))
            .collect();
        ordered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.current.store(Arc::new(Snapshot {
            entries,
            ordered,
            version,
        }));
        Written {
            version,
            previous: old,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data, and a snapshot is published whole or not at all, so a
        // panic in another writer leaves nothing half-done: poisoning can be ignored.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn names<V>(found: &[(&str, &Slot<V>)]) -> Vec<String> {
        found.iter().map(|(k, _)| (*k).to_owned()).collect()
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "openai",
            "aws.bedrock",
            "a b",
            "é",
            "日本語",
            "x\u{00A0}y",
            "🙂",
        ] {
            assert_eq!(check_name(name.as_bytes()), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn refuses_an_empty_name() {
        assert_eq!(check_name(b""), Err(NameProblem::Empty));
    }

    #[test]
    fn counts_length_in_code_points() {
        let ascii = "a".repeat(MAX_NAME_LENGTH);
        assert_eq!(check_name(ascii.as_bytes()), Ok(()));
        assert_eq!(
            check_name(format!("{ascii}a").as_bytes()),
            Err(NameProblem::TooLong)
        );
        let wide = "日".repeat(MAX_NAME_LENGTH); // 768 bytes, 256 code points
        assert_eq!(check_name(wide.as_bytes()), Ok(()));
        assert_eq!(
            check_name(format!("{wide}日").as_bytes()),
            Err(NameProblem::TooLong)
        );
    }

    #[test]
    fn refuses_control_characters_anywhere() {
        for name in [
            "a\nb",
            "\0",
            "ab\u{7f}",
            "a\u{85}b",
            "\u{9f}x",
            "x\u{1b}[0m",
        ] {
            assert_eq!(
                check_name(name.as_bytes()),
                Err(NameProblem::Control),
                "{name:?}"
            );
        }
        // Not Cc: a format character and a private-use one are accepted.
        assert_eq!(check_name("a\u{200B}b".as_bytes()), Ok(()));
        assert_eq!(check_name("a\u{E000}b".as_bytes()), Ok(()));
    }

    #[test]
    fn refuses_whitespace_at_either_end_only() {
        for name in [" a", "a ", "\u{3000}a", "a\u{2029}", "\u{A0}", "a\u{1680}"] {
            assert_eq!(
                check_name(name.as_bytes()),
                Err(NameProblem::Whitespace),
                "{name:?}"
            );
        }
        assert_eq!(check_name("a b\u{3000}c".as_bytes()), Ok(()));
    }

    #[test]
    fn checks_run_in_the_twins_order() {
        // Too long wins over control characters, which win over whitespace.
        let long = format!(" {}\n", "a".repeat(MAX_NAME_LENGTH));
        assert_eq!(check_name(long.as_bytes()), Err(NameProblem::TooLong));
        assert_eq!(check_name(b" a\n"), Err(NameProblem::Control));
    }

    #[test]
    fn refuses_lone_surrogates_after_length_and_control_checks() {
        // "\ud800" and "\udfff" as Python's surrogatepass encodes them.
        for surrogate in [[0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF]] {
            let name = [b"a".as_slice(), &surrogate, b"b"].concat();
            assert_eq!(check_name(&name), Err(NameProblem::Surrogate));
            let spaced = [&surrogate, b" ".as_slice()].concat();
            assert_eq!(check_name(&spaced), Err(NameProblem::Surrogate));
            let control = [&surrogate, b"\n".as_slice()].concat();
            assert_eq!(check_name(&control), Err(NameProblem::Control));
            // A surrogate counts as one code point, as in Python.
            let long = surrogate.repeat(MAX_NAME_LENGTH + 1);
            assert_eq!(check_name(&long), Err(NameProblem::TooLong));
            let longest = surrogate.repeat(MAX_NAME_LENGTH);
            assert_eq!(check_name(&longest), Err(NameProblem::Surrogate));
        }
        // The neighbours of the surrogate block are ordinary characters.
        assert_eq!(check_name("\u{D7FF}\u{E000}".as_bytes()), Ok(()));
    }

    #[test]
    fn decodes_every_width() {
        let text = "a\u{e9}\u{65e5}\u{1F642}";
        let decoded: Vec<u32> = CodePoints(text.as_bytes()).collect();
        let expected: Vec<u32> = text.chars().map(u32::from).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn truncated_input_does_not_panic() {
        assert_eq!(CodePoints(&[0xF0, 0x9F]).count(), 1);
        let _ = check_name(&[0xE2]);
        let _ = check_name(&[0x80, 0x80]);
    }

    #[test]
    fn insert_get_remove_and_versions() {
        let table = Table::new();
        assert_eq!(table.snapshot().version(), 0);
        let written = table.insert("openai", 1, 0b11, false).unwrap();
        assert_eq!(written.version, 1);
        assert!(written.previous.is_empty());
        let snap = table.snapshot();
        assert_eq!(
            snap.get("openai").map(|s| (s.value, s.caps)),
            Some((1, 0b11))
        );
        assert!(!snap.contains("anthropic"));

        let refused = table.insert("openai", 2, 0, false).unwrap_err();
        assert_eq!(refused.0, 2);
        assert_eq!(
            table.snapshot().version(),
            1,
            "a refused insert is not a write"
        );

        let replaced = table.insert("openai", 3, 0b1, true).unwrap();
        assert_eq!(replaced.version, 2);
        assert_eq!(replaced.previous.get("openai").unwrap().value, 1);
        assert_eq!(table.snapshot().get("openai").unwrap().value, 3);

        assert!(table.remove("missing").is_none());
        let (value, written) = table.remove("openai").unwrap();
        assert_eq!((value, written.version), (3, 3));
        assert_eq!(table.snapshot().len(), 0);
    }

    #[test]
    fn an_old_snapshot_stays_intact() {
        let table = Table::new();
        table.insert("a", 1, 0, false).unwrap();
        let before = table.snapshot();
        table.insert("b", 2, 0, false).unwrap();
        table.remove("a").unwrap();
        assert_eq!(names(&before.sorted()), ["a"]);
        assert_eq!(names(&table.snapshot().sorted()), ["b"]);
    }

    #[test]
    fn sorted_and_capability_queries() {
        let table = Table::new();
        for (name, caps) in [("b", 0b011), ("a", 0b001), ("c", 0b111), ("é", 0b010)] {
            table.insert(name, (), caps, false).unwrap();
        }
        let snap = table.snapshot();
        assert_eq!(names(&snap.sorted()), ["a", "b", "c", "é"]);
        assert_eq!(names(&snap.sorted_with(0b011)), ["b", "c"]);
        assert_eq!(names(&snap.sorted_with(0b010)), ["b", "c", "é"]);
        assert_eq!(names(&snap.sorted_with(0)).len(), 4);
        assert!(snap.sorted_with(0b1000).is_empty());
    }

    #[test]
    fn byte_order_is_code_point_order() {
        let table = Table::new();
        let keys = [
            "Z",
            "a",
            "\u{e9}",
            "\u{D7FF}",
            "\u{E000}",
            "\u{FFFF}",
            "\u{10000}",
        ];
        for key in keys.iter().rev() {
            table.insert(key, (), 0, false).unwrap();
        }
        let snap = table.snapshot();
        let sorted: Vec<&str> = snap.sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn clear_and_take() {
        let table = Table::new();
        table.insert("a", 1, 0, false).unwrap();
        let cleared = table.clear();
        assert_eq!((cleared.version, cleared.previous.len()), (2, 1));
        assert!(table.snapshot().is_empty());
        table.insert("b", 1, 0, false).unwrap();
        let taken = table.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(table.snapshot().version(), 3, "take is not a write");
        assert!(table.snapshot().is_empty());
    }

    #[test]
    fn concurrent_writers_lose_nothing_and_readers_see_whole_snapshots() {
        let table = Arc::new(Table::new());
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let table = Arc::clone(&table);
                thread::spawn(move || {
                    for i in 0..200 {
                        let name = format!("w{t}-{i}");
                        table.insert(&name, i, 0, false).unwrap();
                        table.insert("shared", i, 0, true).unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2000 {
                    let snap = table.snapshot();
                    assert!(snap.version() >= last, "versions only go forward");
                    last = snap.version();
                    // Each snapshot is a whole table: its size matches its version.
                    let own = snap.len() - usize::from(snap.contains("shared"));
                    assert!(own as u64 <= snap.version());
                }
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        let snap = table.snapshot();
        assert_eq!(snap.len(), 4 * 200 + 1);
        assert_eq!(snap.version(), 4 * 200 * 2);
    }
}
