//! Searches: what a query asks for, its resume token, and the exact test every backend
//! applies to the candidates its index finds.

use base64::Engine as _;
use serde_json::json;

use super::footprint::{Area, PreparedArea};
use super::item::{check_property_key, Item, Value, ValueKind};
use super::when::{Day, DayZone, TimeRange};
use crate::error::{Error, Result};

/// Results come in time order, this way round; ties are broken by collection and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// A comparison operator of a property filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl Op {
    /// The SQL spelling (the same in SQLite and PostgreSQL).
    pub fn sql(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Ge => ord != Less,
            Op::Gt => ord == Greater,
        }
    }
}

/// `key op value`: true only for items that have the property with a value of the same
/// kind (number, string or datetime) for which the comparison holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyFilter {
    pub key: String,
    pub op: Op,
    pub value: Value,
}

impl PropertyFilter {
    /// Parses `key op value`: `eo:cloud_cover < 20`, `platform = sentinel-2a`,
    /// `created >= 2024-01-01T00:00:00Z`. A value in double quotes is always a string;
    /// otherwise a number if it reads as one, a datetime if it is a full RFC 3339
    /// timestamp, else a string.
    pub fn parse(text: &str) -> Result<PropertyFilter> {
        let bad = |what: &str| {
            Error::option(
                "where",
                text,
                format!(
                    "{what}; write KEY OP VALUE with OP one of < <= = != >= > \
                     (e.g. 'eo:cloud_cover < 20')"
                ),
            )
        };
        let (pos, op_text) = ["<=", ">=", "!=", "<>", "==", "<", ">", "="]
            .iter()
            .filter_map(|op| text.find(op).map(|p| (p, *op)))
            .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())))
            .ok_or_else(|| bad("no comparison operator"))?;
        let op = match op_text {
            "<" => Op::Lt,
            "<=" => Op::Le,
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            ">=" => Op::Ge,
            _ => Op::Gt,
        };
        let key = text[..pos].trim().to_string();
        check_property_key(&key).map_err(|_| bad("no valid property name before the operator"))?;
        let raw = text[pos + op_text.len()..].trim();
        if raw.is_empty() {
            return Err(bad("no value after the operator"));
        }
        Ok(PropertyFilter {
            key,
            op,
            value: parse_value(raw),
        })
    }

    /// Whether an item's properties satisfy this filter.
    pub fn matches(&self, item: &Item) -> bool {
        let Some(v) = item.properties.get(&self.key) else {
            return false;
        };
        if v.kind() != self.value.kind() {
            return false;
        }
        let ord = match (v, &self.value) {
            (Value::String(a), Value::String(b)) => a.as_str().cmp(b.as_str()),
            (Value::Datetime(a), Value::Datetime(b)) => a.cmp(b),
            (a, b) => match a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
            {
                Some(o) => o,
                None => return false,
            },
        };
        self.op.holds(ord)
    }
}

fn parse_value(raw: &str) -> Value {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return Value::String(raw[1..raw.len() - 1].to_string());
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        if f.is_finite() {
            return Value::Float(f);
        }
    }
    Value::from_json(&json!(raw)).unwrap_or_else(|| Value::String(raw.to_string()))
}

/// Where a search resumes: after the item with this sort key, in this direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeToken {
    pub start_us: i64,
    pub collection: String,
    pub id: String,
    pub order: Order,
}

impl ResumeToken {
    /// The token that continues a search after `item`.
    pub fn after(item: &Item, order: Order) -> ResumeToken {
        ResumeToken {
            start_us: item.start_us,
            collection: item.collection.clone(),
            id: item.id.clone(),
            order,
        }
    }

    /// Opaque text: URL-safe base64 of a small JSON array.
    pub fn encode(&self) -> String {
        let text = json!([
            1,
            self.start_us,
            self.collection,
            self.id,
            self.order.name()
        ])
        .to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(token: &str) -> Result<ResumeToken> {
        let bad = || {
            Error::option(
                "after",
                token,
                "a resume token printed by an earlier `gridstore catalog search` with the \
                 same query",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| bad())?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let a = v
            .as_array()
            .filter(|a| a.len() == 5 && a[0] == 1)
            .ok_or_else(bad)?;
        let order = match a[4].as_str() {
            Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            _ => return Err(bad()),
        };
        Ok(ResumeToken {
            start_us: a[1].as_i64().ok_or_else(bad)?,
            collection: a[2].as_str().ok_or_else(bad)?.to_string(),
            id: a[3].as_str().ok_or_else(bad)?.to_string(),
            order,
        })
    }

    /// Whether an item comes strictly after this token in the token's order.
    pub fn precedes(&self, item: &Item) -> bool {
        let key = (item.start_us, item.collection.as_str(), item.id.as_str());
        let mine = (self.start_us, self.collection.as_str(), self.id.as_str());
        match self.order {
            Order::Asc => key > mine,
            Order::Desc => key < mine,
        }
    }
}

/// A search. Every criterion given must hold (AND); an empty search matches everything.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Only these collections (all when empty).
    pub collections: Vec<String>,
    /// Footprints that intersect this area.
    pub area: Option<Area>,
    /// Items whose time overlaps this half-open range.
    pub time: Option<TimeRange>,
    /// Items whose time overlaps this day in a zone or in solar time.
    pub day: Option<Day>,
    pub properties: Vec<PropertyFilter>,
    pub order: Order,
    /// Continue after this token (its order must be `order`).
    pub after: Option<ResumeToken>,
    /// At most this many items.
    pub limit: Option<u64>,
}

/// A search made ready for a backend: the area prepared once, the UTC range an index can
/// use, and [`Prepared::matches`] for the exact test of each candidate.
#[derive(Debug)]
pub struct Prepared {
    pub search: Search,
    pub area: Option<PreparedArea>,
    /// Every matching item's time overlaps this range (time range, named day, and the
    /// widened window of a solar day, combined).
    pub time: TimeRange,
}

impl Prepared {
    /// Prepares (a copy of) `search`.
    pub fn new(search: &Search) -> Result<Prepared> {
        if let Some(t) = &search.after {
            if t.order != search.order {
                return Err(Error::option(
                    "after",
                    t.encode(),
                    format!(
                        "a token of a search in {} order; this search is in {} order",
                        t.order.name(),
                        search.order.name()
                    ),
                ));
            }
        }
        for p in &search.properties {
            check_property_key(&p.key)?;
        }
        let area = search.area.as_ref().map(PreparedArea::new).transpose()?;
        let mut time = search.time.unwrap_or_default();
        if let Some(day) = &search.day {
            time = time.intersect(&day.prefilter_range()?);
        }
        Ok(Prepared {
            search: search.clone(),
            area,
            time,
        })
    }

    /// Whether `item` matches every criterion exactly, after the token. Backends call it
    /// on every candidate their index returns.
    pub fn matches(&self, item: &Item) -> Result<bool> {
        let s = &self.search;
        if !s.collections.is_empty() && !s.collections.contains(&item.collection) {
            return Ok(false);
        }
        if let Some(t) = &s.after {
            if !t.precedes(item) {
                return Ok(false);
            }
        }
        if !self.time.overlaps(item.start_us, item.end_us) {
            return Ok(false);
        }
        if let Some(day) = &s.day {
            if !day.matches(item.start_us, item.end_us, item.footprint.centroid_lon)? {
                return Ok(false);
            }
        }
        if !s.properties.iter().all(|p| p.matches(item)) {
            return Ok(false);
        }
        match &self.area {
            Some(a) => item.footprint.intersects(a),
            None => Ok(true),
        }
    }

    /// Whether the day criterion depends on each item's longitude.
    pub fn solar(&self) -> Option<&Day> {
        self.search
            .day
            .as_ref()
            .filter(|d| matches!(d.zone, DayZone::Solar))
    }
}

/// Comparisons on property kinds, for backends that store each kind apart.
pub fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Number => "number",
        ValueKind::String => "string",
        ValueKind::Datetime => "datetime",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_by_type() {
        let f = PropertyFilter::parse("eo:cloud_cover <= 20.5").unwrap();
        assert_eq!(
            (f.key.as_str(), f.op, f.value),
            ("eo:cloud_cover", Op::Le, Value::Float(20.5))
        );
        let f = PropertyFilter::parse("platform != sentinel-2a").unwrap();
        assert_eq!(f.value, Value::String("sentinel-2a".into()));
        assert_eq!(f.op, Op::Ne);
        let f = PropertyFilter::parse("code = \"12\"").unwrap();
        assert_eq!(f.value, Value::String("12".into()));
        let f = PropertyFilter::parse("created>2024-01-01T00:00:00Z").unwrap();
        assert!(matches!(f.value, Value::Datetime(_)));
        assert!(PropertyFilter::parse("no operator").is_err());
        assert!(PropertyFilter::parse("< 3").is_err());
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = ResumeToken {
            start_us: -5,
            collection: "c".into(),
            id: "a/b".into(),
            order: Order::Desc,
        };
        assert_eq!(ResumeToken::decode(&t.encode()).unwrap(), t);
        assert!(ResumeToken::decode("not a token").is_err());
    }
}
