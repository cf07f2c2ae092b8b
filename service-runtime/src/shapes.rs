//! Multi-row statements in a few fixed shapes, so their prepared statements
//! are reused.
//!
//! sqlx caches prepared statements per connection by SQL text (up to
//! [`STATEMENT_CACHE_CAPACITY`], least recently used out). A statement over a
//! group of rows has a different text for every group size: `IN (?, ?, ?)`
//! for three, `VALUES (…), (…)` for two rows. With group commit the sizes
//! vary from one transaction to the next, so on PostgreSQL almost every such
//! statement was parsed, planned and described again (an extra round trip),
//! and the stream of new texts pushed the fixed ones out of the cache too:
//! 889 distinct texts, every one of 12,199 executions prepared afresh, in one
//! `sync-rpc` run (docs/BENCHMARKS.md "Stop 36").
//!
//! Two rules bound the texts to one per power of two:
//! - a list compared with `IN` is padded to the next power of two by
//!   repeating its last value ([`in_list`]), which changes no result
//!   (membership in a list does not depend on repeats);
//! - rows inserted (or updated through `CASE`) go in chunks whose lengths are
//!   powers of two, largest first ([`shaped_chunks`]): 37 rows are one
//!   statement of 32, one of 4 and one of 1. Rows cannot be repeated, so an
//!   odd group costs up to log₂ statements more, each of them prepared once.
//!
//! Callers whose statements must keep the rows' order across chunks (ids
//! given in `VALUES` order) get it: chunks come in order.

/// Prepared statements each pooled connection of a service whose hot paths
/// use these shapes keeps (`PoolSettings::statement_cache_capacity`): sqlx's
/// default (100) is less than the assignment service's distinct shapes, even
/// bounded.
pub const STATEMENT_CACHE_CAPACITY: usize = 512;

/// `values` as the list of an `IN (…)`: padded to the next power of two by
/// repeating the last value. An empty list stays empty.
pub fn in_list<V: Into<sea_orm::Value>>(
    values: impl IntoIterator<Item = V>,
) -> Vec<sea_orm::Value> {
    padded(values.into_iter().map(Into::into).collect())
}

/// Two `IN` lists of one statement, padded to one length (the next power of
/// two of the longer): the statement's text then depends on one length, not
/// on every combination of two.
pub fn in_list_pair<A: Into<sea_orm::Value>, B: Into<sea_orm::Value>>(
    a: impl IntoIterator<Item = A>,
    b: impl IntoIterator<Item = B>,
) -> [Vec<sea_orm::Value>; 2] {
    let mut lists = [
        a.into_iter()
            .map(Into::into)
            .collect::<Vec<sea_orm::Value>>(),
        b.into_iter().map(Into::into).collect(),
    ];
    let length = lists.iter().map(Vec::len).max().unwrap_or(0);
    for list in &mut lists {
        pad_to(list, length.next_power_of_two());
    }
    lists
}

/// `(first, second) IN (VALUES (?, ?), …)` for `pairs`, padded like
/// [`in_list`], and its values in placeholder order. For lookups on a
/// two-column key on PostgreSQL, where it is a join probing the key's index
/// once per pair whatever the statistics (see the callers for the plans the
/// two `IN` lists got).
pub fn pairs_in_values(
    first: &str,
    second: &str,
    pairs: &[(&str, &str)],
) -> (String, Vec<sea_orm::Value>) {
    let pairs = padded(pairs.to_vec());
    let sql = format!("({first}, {second}) IN ({})", values_rows(pairs.len(), 2));
    let values = pairs
        .iter()
        .flat_map(|(a, b)| [sea_orm::Value::from(*a), sea_orm::Value::from(*b)])
        .collect();
    (sql, values)
}

/// `items` padded to the next power of two by repeating the last; for lists
/// whose repeats change no result (an `IN` list, the rows of a `VALUES` list
/// joined against). An empty list stays empty.
fn padded<T: Clone>(mut items: Vec<T>) -> Vec<T> {
    let length = items.len().next_power_of_two();
    pad_to(&mut items, length);
    items
}

/// `items` made `length` long by repeating the last (an empty list stays empty).
fn pad_to<T: Clone>(items: &mut Vec<T>, length: usize) {
    if let Some(last) = items.last().cloned() {
        items.resize(length, last);
    }
}

/// `VALUES (?, ?), (?, ?)`: `rows` rows of `width` placeholders.
fn values_rows(rows: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("VALUES {}", vec![row; rows].join(", "))
}

/// `rows` in consecutive chunks whose lengths are powers of two, each the
/// largest that fits in what is left and in `max` (rounded down to a power
/// of two; at least 1).
pub fn shaped_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let cap = floor_power_of_two(max.max(1));
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at(floor_power_of_two(rest.len()).min(cap));
        rest = tail;
        Some(chunk)
    })
}

/// The largest power of two not above `n` (which is at least 1).
fn floor_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_list_is_padded_to_a_power_of_two_with_its_last_value() {
        let cases: [(Vec<i64>, Vec<i64>); 5] = [
            (vec![], vec![]),
            (vec![7], vec![7]),
            (vec![7, 8], vec![7, 8]),
            (vec![7, 8, 9], vec![7, 8, 9, 9]),
            (vec![1, 2, 3, 4, 5], vec![1, 2, 3, 4, 5, 5, 5, 5]),
        ];
        for (values, padded) in cases {
            let expected: Vec<sea_orm::Value> = padded.into_iter().map(i64::into).collect();
            assert_eq!(in_list(values.clone()), expected, "{values:?}");
        }
    }

    #[test]
    fn a_pair_of_in_lists_is_padded_to_the_longer_ones_power_of_two() {
        let cases: [(Vec<i64>, Vec<i64>, usize); 3] = [
            (vec![1], vec![2], 1),
            (vec![1], vec![2, 3, 4], 4),
            (vec![1, 2, 3, 4, 5], vec![9], 8),
        ];
        for (a, b, length) in cases {
            let [pa, pb] = in_list_pair(a.clone(), b.clone());
            assert_eq!((pa.len(), pb.len()), (length, length), "{a:?} {b:?}");
            assert_eq!(pa[..a.len()], in_list(a.clone())[..a.len()]);
            assert_eq!(
                pb.last(),
                b.last().map(|v| sea_orm::Value::from(*v)).as_ref()
            );
        }
    }

    #[test]
    fn pairs_in_values_are_padded_and_valued_in_placeholder_order() {
        let (sql, values) = pairs_in_values("a", "b", &[("x", "1"), ("y", "2"), ("z", "3")]);
        assert_eq!(sql, "(a, b) IN (VALUES (?, ?), (?, ?), (?, ?), (?, ?))");
        let expected: Vec<sea_orm::Value> = ["x", "1", "y", "2", "z", "3", "z", "3"]
            .into_iter()
            .map(sea_orm::Value::from)
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn values_rows_have_the_asked_rows_and_width() {
        for (rows, width, sql) in [
            (1, 1, "VALUES (?)"),
            (2, 2, "VALUES (?, ?), (?, ?)"),
            (3, 1, "VALUES (?), (?), (?)"),
        ] {
            assert_eq!(values_rows(rows, width), sql);
        }
    }

    #[test]
    fn in_lists_of_up_to_a_thousand_values_take_eleven_lengths() {
        let lengths: std::collections::BTreeSet<usize> =
            (1..=1000).map(|n| in_list(0..n).len()).collect();
        assert_eq!(lengths.len(), 11);
    }

    #[test]
    fn rows_go_in_power_of_two_chunks_largest_first_within_the_cap() {
        for (rows, max, lengths) in [
            (0, 8, vec![]),
            (1, 8, vec![1]),
            (37, 512, vec![32, 4, 1]),
            (37, 16, vec![16, 16, 4, 1]),
            (20, 10, vec![8, 8, 4]),
            (5, 0, vec![1, 1, 1, 1, 1]),
            (64, 500, vec![64]),
        ] {
            let data: Vec<usize> = (0..rows).collect();
            let chunks: Vec<&[usize]> = shaped_chunks(&data, max).collect();
            assert_eq!(
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
                lengths,
                "{rows} rows, at most {max}"
            );
            assert_eq!(chunks.concat(), data, "the rows, in order");
        }
    }
}
