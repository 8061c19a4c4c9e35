//! Property tests of the protobuf codec: every value that fits a schema
//! round-trips (encode → decode gives it back, with JavaScript's number
//! rules), and no input — random bytes or random JSON — makes the codec
//! panic.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shaddock_protocol::protobuf::Schema;

fn schema() -> Schema {
    Schema::parse(&json!({
        "message User": {"required string name": 1, "optional uInt32 level": 2, "repeated string tags": 3},
        "all": {
            "optional uInt32 u": 1,
            "optional sInt32 s": 2,
            "optional int32 i": 3,
            "optional float f": 4,
            "optional double d": 5,
            "optional string t": 6,
            "repeated uInt32 us": 7,
            "repeated sInt32 ss": 8,
            "repeated float fs": 9,
            "repeated double ds": 10,
            "repeated string ts": 11,
            "optional User owner": 12,
            "repeated User users": 200,
            "optional Box box": 13
        },
        // Global: a type is not visible inside itself unless declared at
        // the top level (pomelo-protobuf's lookup rule).
        "message Box": {"optional Box inner": 1, "optional sInt32 n": 2}
    }))
    .unwrap()
}

/// What decoding gives back for a value we encoded (floats go through f32;
/// whole numbers become integers, as in JavaScript).
fn js(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

fn user() -> impl Strategy<Value = Value> {
    (
        "\\PC{0,12}",
        proptest::option::of(any::<u32>()),
        prop::collection::vec("[a-z]{0,6}", 0..4),
    )
        .prop_map(|(name, level, tags)| {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            if let Some(l) = level {
                m.insert("level".into(), l.into());
            }
            if !tags.is_empty() {
                m.insert("tags".into(), tags.into());
            }
            Value::Object(m)
        })
}

fn boxes() -> impl Strategy<Value = Value> {
    let leaf = any::<i32>().prop_map(|n| json!({"n": n}));
    leaf.prop_recursive(8, 16, 1, |inner| {
        (inner, any::<i32>()).prop_map(|(inner, n)| json!({"inner": inner, "n": n}))
    })
}

/// A value of `all` and what decoding must give back.
fn value() -> impl Strategy<Value = (Value, Value)> {
    (
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(-1e30f64..1e30),
            proptest::option::of(any::<f64>().prop_filter("finite", |f| f.is_finite())),
            proptest::option::of("\\PC{0,30}"),
        ),
        (
            prop::collection::vec(any::<u32>(), 0..6),
            prop::collection::vec(any::<i32>(), 0..6),
            prop::collection::vec(-1e6f64..1e6, 0..4),
            prop::collection::vec(-1e6f64..1e6, 0..4),
            prop::collection::vec("\\PC{0,8}", 0..4),
        ),
        (
            proptest::option::of(user()),
            prop::collection::vec(user(), 0..4),
            proptest::option::of(boxes()),
        ),
    )
        .prop_map(
            |((u, s, i, f, d, t), (us, ss, fs, ds, ts), (owner, users, bx))| {
                let (mut input, mut back) = (Map::new(), Map::new());
                let mut put = |k: &str, v: Value, b: Value| {
                    input.insert(k.into(), v);
                    back.insert(k.into(), b);
                };
                if let Some(u) = u {
                    put("u", u.into(), u.into());
                }
                if let Some(s) = s {
                    put("s", s.into(), s.into());
                }
                if let Some(i) = i {
                    put("i", i.into(), i.into());
                }
                if let Some(f) = f {
                    put("f", f.into(), js(f64::from(f as f32)));
                }
                if let Some(d) = d {
                    put("d", d.into(), js(d));
                }
                if let Some(t) = t {
                    put("t", t.clone().into(), t.into());
                }
                if !us.is_empty() {
                    put("us", us.clone().into(), us.into());
                }
                if !ss.is_empty() {
                    put("ss", ss.clone().into(), ss.into());
                }
                if !fs.is_empty() {
                    let b: Vec<Value> = fs.iter().map(|f| js(f64::from(*f as f32))).collect();
                    put("fs", fs.into(), b.into());
                }
                if !ds.is_empty() {
                    let b: Vec<Value> = ds.iter().map(|d| js(*d)).collect();
                    put("ds", ds.into(), b.into());
                }
                if !ts.is_empty() {
                    put("ts", ts.clone().into(), ts.into());
                }
                if let Some(o) = owner {
                    put("owner", o.clone(), o);
                }
                if !users.is_empty() {
                    put("users", users.clone().into(), users.into());
                }
                if let Some(b) = bx {
                    put("box", b.clone(), b);
                }
                (Value::Object(input), Value::Object(back))
            },
        )
}

/// Any JSON (bounded depth).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("u".to_string()),
                        Just("users".to_string()),
                        Just("box".to_string()),
                        Just("fs".to_string()),
                        Just("t".to_string()),
                        "[a-z]{1,3}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn what_fits_the_schema_round_trips((input, back) in value()) {
        let s = schema();
        let bytes = s.encode("all", &input).unwrap();
        prop_assert_eq!(s.decode("all", &bytes).unwrap(), back);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let s = schema();
        for route in ["all", "message User"] {
            if let Ok(v) = s.decode(route, &bytes) {
                // Whatever decoded is a value the encoder takes back,
                // unless it holds a non-finite float (decoded as null).
                let _ = s.encode(route, &v);
            }
        }
    }

    #[test]
    fn random_json_never_panics_the_encoder(v in any_json()) {
        let s = schema();
        if let Ok(bytes) = s.encode("all", &v) {
            prop_assert!(s.decode("all", &bytes).is_ok());
        }
    }

    #[test]
    fn a_truncated_encoding_never_panics_the_decoder((input, _) in value(), cut in any::<prop::sample::Index>()) {
        let s = schema();
        let bytes = s.encode("all", &input).unwrap();
        if !bytes.is_empty() {
            let n = cut.index(bytes.len());
            let _ = s.decode("all", &bytes[..n]);
        }
    }
}

/// Found by the property above on CI: a whole double past 2^53 decoded as
/// an integer type (`12356787643697844224`, digits a double does not hold)
/// where its input was the double. It stays the double.
#[test]
fn a_whole_double_past_the_safe_integers_stays_a_double() {
    let s = schema();
    for d in [1.2356787643697844e19, 9_007_199_254_740_994.0, -1.0e300] {
        let input = serde_json::json!({ "d": d });
        let bytes = s.encode("all", &input).unwrap();
        assert_eq!(s.decode("all", &bytes).unwrap(), input, "{d}");
    }
    let safe = serde_json::json!({ "d": 9_007_199_254_740_992_i64 });
    let bytes = s.encode("all", &safe).unwrap();
    assert_eq!(s.decode("all", &bytes).unwrap(), safe);
}
