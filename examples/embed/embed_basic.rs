//! The embedding API in one sitting: Rust functions and Rust types exposed
//! to a script, and the script's result read back as a Rust value.
//!
//! The host registers `format_cents` (an infallible closure), `price`
//! (a fallible one: an unknown item is a `NotFound` error the script
//! catches) and the serde struct `Order`; `price` returns an `Item`, which
//! declares that type to scripts on the way. The script prices a shopping
//! list, skips what the host does not sell, and ends with a top-level
//! `return` of an `Order`, which the host reads with `Run::get::<Order>`.
//! It also shows that calls are type-checked against the Rust signatures
//! when a script compiles.
//!
//! Run with `cargo run -p spool-examples --example embed_basic`.

use std::error::Error;

use serde::{Deserialize, Serialize};
use spool::{CaptureOutput, Engine, HostError, Step};

/// Something the shop sells.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    name: String,
    price_cents: i64,
}

/// One line of an order: an item, how many, and what they cost together.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Line {
    item: Item,
    quantity: i64,
    total_cents: i64,
}

/// What the script returns.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: i64,
    lines: Vec<Line>,
    total_cents: i64,
}

/// The shop's price list.
const CATALOG: [(&str, i64); 3] = [("tea", 350), ("scones", 275), ("jam", 420)];

const SCRIPT: &str = r#"
let wanted = ["tea": 2, "caviar": 1, "scones": 3]
let lines: [Line] = []
for name, quantity in wanted {
  try {
    let item = price(name)
    lines.push(Line(item: item, quantity: quantity, total_cents: item.price_cents * quantity))
  } catch e {
    print("skipped ${name}: ${e.kind}: ${e.message}")
  }
}
let total = lines.fold(0, fn(sum, line) => sum + line.total_cents)
print("${lines.len()} lines, total ${format_cents(total)}")
return Order(id: 17, lines: lines, total_cents: total)
"#;

fn main() -> Result<(), Box<dyn Error>> {
    let engine = engine()?;
    show_compile_time_check(&engine);
    let program = engine.compile("order.spl", SCRIPT)?;
    let mut run = program.start(Vec::new());
    let mut output = CaptureOutput::default();
    let Step::Done(result) = run.resume(&mut output)? else {
        return Err("the script stopped before its end".into());
    };
    for line in &output.lines {
        println!("script printed: {line}");
    }
    let order: Order = run.get(result)?;
    println!("the script returned: {order:?}");
    let expected: i64 = order.lines.iter().map(|line| line.total_cents).sum();
    println!(
        "order {} has {} lines; the host adds them up to {}",
        order.id,
        order.lines.len(),
        format_cents(expected)
    );
    Ok(())
}

/// An engine with the host's functions and types.
fn engine() -> Result<Engine, spool::Error> {
    let mut engine = Engine::new();
    engine.register_fn("format_cents", format_cents)?;
    // Returning `Item` declares `struct Item` to scripts.
    engine.register_fn("price", price)?;
    // `Order` and `Line` appear in no signature, so they are declared here.
    engine.register_type::<Order>()?;
    Ok(engine)
}

/// `1234` as `"12.34"`.
fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The catalog entry for `name`, or a `NotFound` error the script can catch.
fn price(name: String) -> Result<Item, HostError> {
    let found = CATALOG.iter().find(|(item, _)| *item == name);
    match found {
        Some(&(_, price_cents)) => Ok(Item { name, price_cents }),
        None => Err(HostError::new("NotFound", format!("no price for `{name}`"))),
    }
}

/// Compiles a call with an argument of the wrong type and prints why the
/// engine refused it.
fn show_compile_time_check(engine: &Engine) {
    match engine.compile("bad.spl", "print(format_cents(\"12\"))") {
        Ok(_) => println!("compile-time check: unexpectedly accepted"),
        Err(error) => {
            let first = error.diagnostics().first().map(|d| d.message.clone());
            println!("compile-time check: {}", first.unwrap_or_default());
        }
    }
}
