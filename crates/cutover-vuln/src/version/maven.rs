//! Maven versions ordered as `org.apache.maven.artifact.versioning.ComparableVersion` (3.8) orders
//! them: items split at `.`, `-` and digit/letter transitions, `-` and transitions opening a nested
//! list, qualifiers ranked `alpha < beta < milestone < rc = cr < snapshot < "" = ga = final =
//! release < sp < (others, alphabetically)`, trailing "null" items dropped from each list.

use super::VersionError;
use super::num::Num;
use std::cmp::Ordering;

/// The rank of the release qualifier (`""`), which "null" padding compares against.
const RELEASE_RANK: u8 = 5;
/// Unknown qualifiers rank after every known one and among themselves alphabetically.
const UNKNOWN_RANK: u8 = 7;

/// One item of a Maven version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    /// A number (Maven's IntItem/LongItem/BigIntegerItem: all compare by value).
    Int(Num),
    /// A qualifier: its rank and, for unknown qualifiers, its text.
    Str(u8, Box<str>),
    /// A nested list (opened by `-` or a digit/letter transition).
    List(Vec<Item>),
}

/// A parsed Maven version (equality is Maven's: `1.0` equals `1`).
#[derive(Debug, Clone)]
pub struct MavenVersion {
    items: Vec<Item>,
}

fn string_item(raw: &str, followed_by_digit: bool) -> Item {
    let mut value = raw;
    if followed_by_digit && raw.len() == 1 {
        value = match raw {
            "a" => "alpha",
            "b" => "beta",
            "m" => "milestone",
            other => other,
        };
    }
    let value = match value {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    let rank = match value {
        "alpha" => 0,
        "beta" => 1,
        "milestone" => 2,
        "rc" => 3,
        "snapshot" => 4,
        "" => RELEASE_RANK,
        "sp" => 6,
        _ => UNKNOWN_RANK,
    };
    let text = if rank == UNKNOWN_RANK { value } else { "" };
    Item::Str(rank, text.into())
}

fn parse_item(is_digit: bool, buf: &str) -> Item {
    if is_digit {
        Item::Int(Num::parse(buf).expect("caller passes a run of ASCII digits"))
    } else {
        string_item(buf, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(n) => n.is_zero(),
            Item::Str(rank, _) => *rank == RELEASE_RANK,
            Item::List(l) => l.is_empty(),
        }
    }

    /// `ComparableVersion.Item.compareTo`, where `None` is Java's `null` (padding).
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(n), None) => {
                if n.is_zero() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Int(a), Some(Item::Int(b))) => a.cmp(b),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(rank, _), None) => rank.cmp(&RELEASE_RANK),
            (Item::Str(_, _), Some(Item::Int(_) | Item::List(_))) => Ordering::Less,
            (Item::Str(ra, ta), Some(Item::Str(rb, tb))) => ra.cmp(rb).then_with(|| ta.cmp(tb)),
            (Item::List(l), None) => {
                for item in l {
                    let r = item.compare(None);
                    if r != Ordering::Equal {
                        return r;
                    }
                }
                Ordering::Equal
            }
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_, _))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => compare_lists(a, b),
        }
    }
}

fn compare_lists(a: &[Item], b: &[Item]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let r = match (a.get(i), b.get(i)) {
            (Some(l), r) => l.compare(r),
            (None, Some(r)) => r.compare(None).reverse(),
            (None, None) => Ordering::Equal,
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// Lists are built in an arena (index = creation order) because Maven's parser keeps appending to
/// the innermost open list while outer lists hold references to it.
enum Node {
    Leaf(Item),
    List(usize),
}

fn build(arena: &mut Vec<Vec<Node>>, idx: usize) -> Vec<Item> {
    let nodes = std::mem::take(&mut arena[idx]);
    nodes
        .into_iter()
        .map(|n| match n {
            Node::Leaf(item) => item,
            Node::List(child) => Item::List(build(arena, child)),
        })
        .collect()
}

fn normalize(list: &mut Vec<Item>) {
    for item in list.iter_mut() {
        if let Item::List(inner) = item {
            normalize(inner);
        }
    }
    // Drop trailing nulls, looking through trailing lists (Maven's ListItem.normalize).
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// Parses a Maven version. Maven accepts any string; only the empty string is refused here.
pub fn parse(input: &str) -> Result<MavenVersion, VersionError> {
    let version = input.trim().to_lowercase();
    if version.is_empty() {
        return Err(VersionError::new("Maven", input, "empty version"));
    }
    let mut arena: Vec<Vec<Node>> = vec![Vec::new()];
    let mut cur = 0usize;
    let mut is_digit = false;
    let mut start = 0usize;
    let new_list = |arena: &mut Vec<Vec<Node>>, cur: &mut usize| {
        arena.push(Vec::new());
        let id = arena.len() - 1;
        arena[*cur].push(Node::List(id));
        *cur = id;
    };
    for (i, c) in version.char_indices() {
        if c == '.' || c == '-' {
            let item = if i == start {
                Item::Int(Num::zero())
            } else {
                parse_item(is_digit, &version[start..i])
            };
            start = i + 1;
            // A release qualifier alone between two hyphens (`1-ga-1`) stands for nothing: Maven
            // documents `1-1` == `1-ga-1`, which a nested list would break.
            if c == '-'
                && arena[cur].is_empty()
                && cur != 0
                && item == Item::Str(RELEASE_RANK, "".into())
            {
                continue;
            }
            arena[cur].push(Node::Leaf(item));
            if c == '-' {
                new_list(&mut arena, &mut cur);
            }
        } else if c.is_ascii_digit() {
            if !is_digit && i > start {
                arena[cur].push(Node::Leaf(string_item(&version[start..i], true)));
                start = i;
                new_list(&mut arena, &mut cur);
            }
            is_digit = true;
        } else {
            if is_digit && i > start {
                arena[cur].push(Node::Leaf(parse_item(true, &version[start..i])));
                start = i;
                new_list(&mut arena, &mut cur);
            }
            is_digit = false;
        }
    }
    if version.len() > start {
        arena[cur].push(Node::Leaf(parse_item(is_digit, &version[start..])));
    }
    let mut items = build(&mut arena, 0);
    normalize(&mut items);
    Ok(MavenVersion { items })
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_lists(&self.items, &other.items)
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MavenVersion {}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
