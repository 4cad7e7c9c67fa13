//! "Did you mean?" for compile errors (LANGUAGE.md §10): the known name
//! closest to an unknown one, by edit distance, for the hint of a
//! diagnostic about an unknown name, field, method, variant or type.
//!
//! The distance is Damerau's (optimal string alignment: insertions,
//! deletions, substitutions and swaps of two neighbouring chars each cost
//! one), counted in chars. A candidate is close enough when the distance is
//! at most a third of the unknown name's length (at least 1) and less than
//! that length, so `nmae` finds `name` and `ln` finds `len`, but a
//! one-letter name is never "corrected" into another one-letter name, nor
//! `count` into a word two edits away. Among equally close candidates the
//! first in alphabetical order wins, so the hint does not depend on the
//! order of a hash map.

/// The candidate closest to `name`, if one is close enough; `name` itself
/// and names starting with `__` (the library's internals) are never
/// suggested.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = (length / 3).max(1).min(length.saturating_sub(1));
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name && !candidate.starts_with("__"))
        .filter_map(|candidate| {
            let distance = distance_within(name, candidate, limit)?;
            Some((distance, candidate))
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// The hint for `name` among `candidates`: ``did you mean `upper`?``.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|found| format!("did you mean `{found}`?"))
}

/// The edit distance between `a` and `b` when it is at most `limit`.
fn distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let distance = distance(&a, &b);
    (distance <= limit).then_some(distance)
}

/// Damerau's optimal string alignment distance between two char slices.
fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows of the dynamic programme: two back, one back, this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j - 1] + cost)
                .min(previous[j] + 1)
                .min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        distance(&a, &b)
    }

    #[test]
    fn counts_edits_and_swaps() {
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "ab"), 2);
        assert_eq!(d("nmae", "name"), 1);
        assert_eq!(d("uper", "upper"), 1);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ca", "abc"), 3);
        assert_eq!(d("héllo", "hello"), 1);
    }

    #[test]
    fn suggests_the_closest_within_a_third_of_the_length() {
        let names = ["upper", "lower", "len", "split", "__flight_wait"];
        assert_eq!(closest("uper", names), Some("upper"));
        assert_eq!(closest("lenght", names), None, "three edits from `len`");
        assert_eq!(closest("spilt", names), Some("split"));
        assert_eq!(closest("ln", names), Some("len"));
        assert_eq!(closest("zzzzzz", names), None);
        assert_eq!(closest("upper", names), None, "never the name itself");
        assert_eq!(closest("__flight_wai", names), None, "never internals");
        assert_eq!(
            closest("ab", ["ac", "aa", "b"]),
            Some("aa"),
            "ties: alphabetical"
        );
        assert_eq!(closest("x", ["y", "a"]), None, "one letter for another");
        assert_eq!(
            did_you_mean("lowr", names).as_deref(),
            Some("did you mean `lower`?")
        );
    }
}
