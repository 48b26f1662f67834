//! The PostgreSQL + PostGIS catalog backend against a real server on 127.0.0.1: the
//! conformance suite every backend passes, and what is particular to this one (its SQL
//! narrowing never loses a match; paging; summaries after replacing and removing).

mod common;

use std::collections::BTreeMap;

use gridstore::catalog::query::Prepared;
use gridstore::catalog::{
    self, Area, Catalog, Crs, Day, Footprint, Item, Order, PropertyFilter, ResumeToken, Search,
    TimeRange, Value,
};

use common::servers::{postgres, Postgres};

/// A fresh database on the server with an empty catalog in it.
fn fresh(pg: &Postgres, n: &mut u32) -> Box<dyn Catalog> {
    *n += 1;
    pg.psql(&format!("CREATE DATABASE c{n}"));
    let url = pg.url().replace("/postgres", &format!("/c{n}"));
    catalog::init(&url).expect("a new catalog")
}

#[test]
fn postgis_passes_the_catalog_conformance_suite() {
    let pg = postgres();
    let mut n = 0;
    catalog::conformance::run_all(&mut || fresh(&pg, &mut n));
}

#[test]
fn writes_during_a_search_on_a_second_connection() {
    let pg = postgres();
    let mut n = 0;
    let mut writer = fresh(&pg, &mut n);
    let url = pg.url().replace("/postgres", &format!("/c{n}"));
    let reader = catalog::open(&url).unwrap();
    catalog::conformance::writes_during_a_search(&*reader, &mut *writer);
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.unit()
    }
}

const DAY_US: i64 = 86_400_000_000;
const T0: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z

/// Items in UTM zones 1 and 60 (either side of the antimeridian), polar stereographic
/// north and south, and geographic boxes, some across 180°; times over a year.
fn items(rng: &mut Rng, count: usize, collection: &str) -> Vec<Item> {
    let crs: Vec<Crs> = [
        "EPSG:32601",
        "EPSG:32660",
        "EPSG:3413",
        "EPSG:3031",
        "EPSG:4326",
    ]
    .iter()
    .map(|c| Crs::from_user(c).unwrap())
    .collect();
    (0..count)
        .map(|i| {
            let k = i % crs.len();
            let bounds = match k {
                0 | 1 => {
                    let x = rng.range(200_000.0, 700_000.0);
                    let y = rng.range(0.0, 8_000_000.0);
                    [x, y, x + 100_000.0, y + 100_000.0]
                }
                2 | 3 => {
                    let x = rng.range(-3_000_000.0, 2_500_000.0);
                    let y = rng.range(-3_000_000.0, 2_500_000.0);
                    let side = rng.range(50_000.0, 500_000.0);
                    [x, y, x + side, y + side]
                }
                _ => {
                    let x = rng.range(-180.0, 178.0);
                    let y = rng.range(-80.0, 78.0);
                    [x, y, x + 2.0, y + 2.0]
                }
            };
            let footprint = match k {
                // Across the antimeridian in its own CRS: longitude 179 to 181.
                4 if i % 10 == 4 => {
                    Footprint::from_bounds(crs[4].clone(), [179.0, -5.0, 181.0, 5.0])
                }
                _ => Footprint::from_bounds(crs[k].clone(), bounds),
            }
            .unwrap();
            let start = T0 + (rng.unit() * 365.0 * DAY_US as f64) as i64;
            let mut properties = BTreeMap::new();
            properties.insert("cloud".into(), Value::Float((rng.unit() * 100.0).floor()));
            properties.insert("orbit".into(), Value::Int((rng.next() % 50) as i64));
            let platform = ["s2a", "s2b", "l8"][(rng.next() % 3) as usize];
            properties.insert("platform".into(), Value::String(platform.into()));
            properties.insert("made".into(), Value::Datetime(start + DAY_US));
            Item {
                id: format!("item-{i:05}"),
                collection: collection.into(),
                start_us: start,
                end_us: start + 1 + (rng.next() % 3) as i64 * DAY_US / 2,
                footprint,
                properties,
                extra: serde_json::json!({"n": i, "nested": {"k": [1, 2]}}),
                bands: serde_json::Value::Null,
                href: Some(format!("/data/{i}.tif")),
            }
        })
        .collect()
}

/// The ids the catalog finds, in its order.
fn found(c: &dyn Catalog, s: &Search) -> Vec<String> {
    c.search(s)
        .unwrap()
        .map(|i| i.unwrap().id)
        .collect::<Vec<_>>()
}

/// The ids every item tested one by one gives, in time order.
fn brute_force(all: &[Item], s: &Search) -> Vec<String> {
    let p = Prepared::new(s).unwrap();
    let mut hits: Vec<&Item> = all.iter().filter(|i| p.matches(i).unwrap()).collect();
    hits.sort_by(|a, b| {
        (a.start_us, &a.collection, &a.id).cmp(&(b.start_us, &b.collection, &b.id))
    });
    if s.order == Order::Desc {
        hits.reverse();
    }
    hits.into_iter().map(|i| i.id.clone()).collect()
}

fn searches() -> Vec<Search> {
    let mut out = Vec::new();
    let boxes = [
        [170.0, -30.0, -170.0, 30.0], // across the antimeridian
        [-10.0, 40.0, 20.0, 60.0],
        [-180.0, 60.0, 180.0, 90.0], // the north polar cap
        [175.0, -90.0, 180.0, -60.0],
    ];
    for b in boxes {
        out.push(Search {
            area: Some(Area::Bbox { bbox: b, crs: None }),
            ..Search::default()
        });
    }
    out.push(Search {
        area: Some(Area::Polygon {
            wkt: "POLYGON((-1000000 -1000000,1000000 -1000000,1000000 1000000,-1000000 1000000,-1000000 -1000000))".into(),
            crs: Some("EPSG:3031".into()),
        }),
        time: Some(TimeRange { start: Some(T0 + 30 * DAY_US), end: Some(T0 + 200 * DAY_US) }),
        ..Search::default()
    });
    for f in [
        "cloud < 20",
        "orbit >= 40",
        "platform = l8",
        "platform != l8",
        "made > 2024-06-01T00:00:00Z",
    ] {
        out.push(Search {
            properties: vec![PropertyFilter::parse(f).unwrap()],
            time: Some(TimeRange {
                start: Some(T0 + 100 * DAY_US),
                end: Some(T0 + 160 * DAY_US),
            }),
            order: Order::Desc,
            ..Search::default()
        });
    }
    for (d, z) in [
        ("2024-03-31", "Europe/Amsterdam"),
        ("2024-07-01", "solar"),
        ("2024-10-27", "Pacific/Auckland"),
    ] {
        out.push(Search {
            day: Some(Day::parse(d, z).unwrap()),
            ..Search::default()
        });
    }
    out
}

#[test]
fn the_sql_narrowing_never_loses_a_match_and_pages_in_order() {
    let pg = postgres();
    let mut n = 0;
    let mut c = fresh(&pg, &mut n);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let all = items(&mut rng, 2500, "scenes");
    for batch in all.chunks(700) {
        c.add_batch(batch).unwrap();
    }
    for s in searches() {
        let want = brute_force(&all, &s);
        assert_eq!(found(&*c, &s), want, "search {s:?}");
        assert!(
            !want.is_empty(),
            "a search that finds nothing tests little: {s:?}"
        );
    }
    // Everything, in both directions (more than two pages), and resumed halfway.
    for order in [Order::Asc, Order::Desc] {
        let s = Search {
            order,
            ..Search::default()
        };
        let every = found(&*c, &s);
        assert_eq!(every, brute_force(&all, &s));
        let limited = Search {
            limit: Some(1234),
            ..s.clone()
        };
        let first = c
            .search(&limited)
            .unwrap()
            .map(|i| i.unwrap())
            .collect::<Vec<_>>();
        assert_eq!(first.len(), 1234);
        let after = ResumeToken::after(first.last().unwrap(), order);
        let rest = Search {
            after: Some(after),
            ..s.clone()
        };
        let mut resumed: Vec<String> = first.iter().map(|i| i.id.clone()).collect();
        resumed.extend(found(&*c, &rest));
        assert_eq!(resumed, every, "{order:?}: the token continues exactly");
    }
    // Items come back as they went in.
    let back = c
        .search(&Search {
            limit: Some(1),
            ..Search::default()
        })
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let sent = all.iter().find(|i| i.id == back.id).unwrap();
    assert_eq!(back.footprint, sent.footprint);
    assert_eq!(back.properties, sent.properties);
    assert_eq!(back.extra, sent.extra);
    assert_eq!(back.href, sent.href);
}

#[test]
fn refreshing_statistics_vacuums_and_analyzes_the_items_and_their_boxes() {
    let pg = postgres();
    let mut n = 0;
    let mut c = fresh(&pg, &mut n);
    c.add_batch(&items(&mut Rng(7), 30, "a")).unwrap();
    // Both tables a search of an area reads; autovacuum's own runs are counted apart.
    let done = |pg: &Postgres| {
        pg.psql_in(
            &format!("c{n}"),
            "SELECT string_agg(relname || ':' || (last_analyze IS NOT NULL) || \
             (last_vacuum IS NOT NULL), ' ' ORDER BY relname) FROM pg_stat_user_tables \
             WHERE schemaname = 'gridstore' AND relname IN ('items', 'parts')",
        )
    };
    let before = done(&pg);
    c.refresh_statistics().unwrap();
    assert_eq!(
        (before.trim(), done(&pg).trim()),
        (
            "items:falsefalse parts:falsefalse",
            "items:truetrue parts:truetrue"
        )
    );
}

#[test]
fn summaries_follow_replacements_and_removals() {
    let pg = postgres();
    let mut n = 0;
    let mut c = fresh(&pg, &mut n);
    let mut rng = Rng(42);
    let mut all = items(&mut rng, 50, "a");
    all.extend(items(&mut rng, 20, "b"));
    c.add_batch(&all).unwrap();
    let e = c.extent(&["a".into()], None).unwrap();
    assert_eq!(e.count, 50);
    let latest = all[..50].iter().map(|i| i.end_us).max().unwrap();
    assert_eq!(e.time.unwrap().1, latest);
    // Replace the latest item of `a` with an earlier one: the extent shrinks back.
    let mut last = all[..50].iter().max_by_key(|i| i.end_us).unwrap().clone();
    last.start_us = T0;
    last.end_us = T0 + 1;
    c.add_batch(std::slice::from_ref(&last)).unwrap();
    let e = c.extent(&["a".into()], None).unwrap();
    assert_eq!(e.count, 50, "replaced, not added");
    let rest = all[..50]
        .iter()
        .filter(|i| i.id != last.id)
        .map(|i| i.end_us)
        .max()
        .unwrap();
    assert_eq!(e.time.unwrap().1, rest);
    // Remove two items, then the whole of `b`.
    let ids = vec![all[0].id.clone(), all[1].id.clone(), "no-such-item".into()];
    assert_eq!(c.remove("a", Some(&ids)).unwrap(), 2);
    assert_eq!(c.extent(&["a".into()], None).unwrap().count, 48);
    assert_eq!(c.remove("b", None).unwrap(), 20);
    assert_eq!(c.collections().unwrap(), vec!["a".to_string()]);
    assert_eq!(c.extent(&[], None).unwrap().count, 48);
    let everything = found(&*c, &Search::default());
    assert_eq!(everything.len(), 48);
}

#[test]
fn a_database_without_a_catalog_or_a_wrong_url_gets_a_clear_error() {
    let pg = postgres();
    let err = catalog::open(&pg.url())
        .err()
        .expect("no catalog there yet")
        .to_string();
    assert!(err.contains("gridstore catalog init"), "{err}");
    assert!(!err.contains("secret"));
    let bad = pg
        .url()
        .replace("gridstore@", "gridstore:secret@")
        .replace(&pg.port.to_string(), "1");
    let err = catalog::open(&bad)
        .err()
        .expect("nothing listens there")
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password stays out of messages: {err}"
    );
    catalog::init(&pg.url()).unwrap();
    catalog::open(&pg.url()).expect("made: opens");
    pg.psql("UPDATE gridstore.meta SET value = '99' WHERE key = 'version'");
    let err = catalog::open(&pg.url())
        .err()
        .expect("another version")
        .to_string();
    assert!(err.contains("version \"99\""), "{err}");
}

#[test]
fn init_says_what_the_user_lacks_only_when_that_is_what_failed() {
    let pg = postgres();
    pg.psql("CREATE DATABASE lacks");
    pg.psql("CREATE ROLE reader LOGIN");
    pg.psql("REVOKE CREATE ON DATABASE lacks FROM PUBLIC");
    pg.psql_in("lacks", "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let db = pg.url().replace("/postgres", "/lacks");
    let as_reader = db.replace("gridstore@", "reader@");
    let err = catalog::init(&as_reader)
        .err()
        .expect("the role may not create")
        .to_string();
    assert!(
        err.contains("the user needs CREATE on the database"),
        "{err}"
    );
    // The URL's own session options are kept beside the catalog's: a timeout of 1 ms
    // cancels the tables' creation, and the message says so without blaming rights.
    let hurried = format!("{db}?options=-c%20statement_timeout%3D1");
    let err = catalog::init(&hurried)
        .err()
        .expect("1 ms is too short to make the tables")
        .to_string();
    assert!(err.contains("statement timeout"), "{err}");
    assert!(!err.contains("needs CREATE"), "{err}");
    catalog::init(&db).expect("the owner makes it");
}
