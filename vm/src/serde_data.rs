//! A serde bridge between Rust values and [`Data`], the plain values that
//! cross the host boundary, and the Spool declarations of Rust types.
//!
//! [`to_data`] serializes any `Serialize` value into [`Data`], [`from_data`]
//! deserializes [`Data`] back, with errors that say where inside the value
//! they happened (`at .orders[3].total: expected a float, found a string`),
//! and [`describe`] (or [`SpoolType::spool_type`]) gives the Spool type of a
//! Rust type together with the `struct` and `enum` declarations it needs,
//! as source the compiler accepts.
//!
//! How Rust maps to Spool:
//!
//! | Rust (serde's data model) | [`Data`] | Spool type |
//! |---|---|---|
//! | integers (`u64` and `i128` only while they fit in an `i64`) | `Int` | `int` |
//! | `f32`, `f64` | `Float` | `float` |
//! | `bool` | `Bool` | `bool` |
//! | `char`, `str`, `String` | `Str` | `str` |
//! | `()`, unit structs, `None` | `Nil` | `nil` (`T?` for an `Option<T>`) |
//! | `Some(x)`, newtype structs, `Box<T>` | the inner value | the inner type |
//! | sequences, sets, bytes | `List` | `[T]` |
//! | tuples, arrays, tuple structs | `List` | `[T]` when every item has type `T` |
//! | maps with `int`, `str` or `bool` keys | `Map` | `[K: V]` |
//! | structs | `Record` named as serde names the struct | `struct` |
//! | enums: unit, newtype, tuple and struct variants | `Variant` | `enum` |
//!
//! Spool's enum payloads are positional, so a struct variant
//! (`Moved { x: i64, y: i64 }`) becomes a variant with the fields' values in
//! declaration order (`Moved(int, int)`); the names are dropped. Spool has no
//! tuples: a tuple whose items share one type is a list, and [`describe`]
//! refuses one that mixes types. `Option<Option<T>>` is `T?`: `Some(None)`
//! and `None` are both `nil`. A field that serde skips when serializing
//! (`skip_serializing_if`) is written as `nil`, which fits the usual
//! `Option::is_none` case.
//!
//! Types whose shape depends on the data (untagged and internally tagged
//! enums, `#[serde(flatten)]`, `serde_json::Value`) convert to and from
//! [`Data`] but have no Spool type, and [`describe`] says so.
//!
//! [`describe`] works from the type alone, as the serde-reflection crate
//! does: it drives `T::deserialize` with a deserializer that records what
//! each call asks for and answers with a sample value. Every place in the
//! type (the root, a struct's field, an item of a list, a variant's payload)
//! is explored once; an option or list whose type is already known is
//! answered with `None` or an empty list, which is how recursive types end.
//! Enums are traced a variant at a time, over as many passes through
//! `T::deserialize` as it takes; a variant that needs a value of its own enum
//! waits until another variant of it is known.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use serde::ser::{self, Serialize};

use crate::tasks::io::Data;

// ---------------------------------------------------------------- public API

/// Converts a Rust value to [`Data`].
///
/// ```
/// use spool_vm::serde_data::to_data;
/// use spool_vm::Data;
///
/// #[derive(serde::Serialize)]
/// struct User { id: i64, name: String }
///
/// let data = to_data(&User { id: 1, name: "ada".into() }).unwrap();
/// assert_eq!(
///     data,
///     Data::Record {
///         name: "User".into(),
///         fields: vec![("id".into(), Data::Int(1)), ("name".into(), Data::str("ada"))],
///     }
/// );
/// assert!(to_data(&u64::MAX).is_err());
/// ```
pub fn to_data<T: Serialize + ?Sized>(value: &T) -> Result<Data, DataError> {
    value.serialize(DataSerializer)
}

/// Reads a Rust value out of [`Data`], given or lent. A record fills a
/// struct whatever the record's name; a map with string keys does too.
///
/// ```
/// use spool_vm::serde_data::from_data;
/// use spool_vm::Data;
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Line { total: f64 }
///
/// let data = Data::List(vec![Data::Record {
///     name: "Line".into(),
///     fields: vec![("total".into(), Data::str("12"))],
/// }]);
/// let error = from_data::<Vec<Line>>(&data).unwrap_err();
/// assert_eq!(error.to_string(), "at [0].total: expected a float, found a string");
/// assert_eq!(from_data::<Option<i64>>(Data::Int(3)), Ok(Some(3)));
/// ```
pub fn from_data<T: DeserializeOwned>(data: impl Borrow<Data>) -> Result<T, DataError> {
    T::deserialize(DataDeserializer(data.borrow()))
}

/// The Spool type of `T` and the declarations it needs, found from the type
/// alone.
///
/// ```
/// use spool_vm::serde_data::describe;
///
/// #[derive(serde::Deserialize)]
/// struct User { id: i64, status: Status, manager: Option<Box<User>> }
/// #[derive(serde::Deserialize)]
/// enum Status { Active, Banned(String) }
///
/// let shape = describe::<Vec<User>>().unwrap();
/// assert_eq!(shape.ty, "[User]");
/// assert_eq!(
///     shape.source(),
///     "enum Status { Active, Banned(str) }\n\
///      struct User { id: int, status: Status, manager: User? }\n"
/// );
/// assert_eq!(shape.declarations[0].0, "Status");
/// ```
pub fn describe<T: DeserializeOwned>() -> Result<SpoolShape, DataError> {
    let mut tracer = Tracer::default();
    let root = tracer.new_place();
    tracer.trace::<T>(root)?;
    tracer.description(root)
}

/// A Rust type as Spool sees it: what [`describe`] gives.
///
/// ```
/// #[derive(serde::Deserialize)]
/// enum Shape { Circle(f64), Rect { w: f64, h: f64 } }
///
/// let shape = spool_vm::serde_data::describe::<Option<Shape>>().unwrap();
/// assert_eq!(shape.ty, "Shape?");
/// assert_eq!(
///     shape.declarations,
///     [("Shape".to_string(), "enum Shape { Circle(float), Rect(float, float) }".to_string())]
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolShape {
    /// The type as Spool writes it: `int`, `[str: User]`, `Shape?`.
    pub ty: String,
    /// The name and source of every struct and enum that `ty` reaches
    /// (`("User", "struct User { id: int }")`), each after those it refers
    /// to, except around a cycle, where the order is free: Spool
    /// declarations are visible in the whole file. The names let a host
    /// merge the declarations of several types.
    pub declarations: Vec<(String, String)>,
}

impl SpoolShape {
    /// The declarations as one piece of Spool source, a line each.
    ///
    /// ```
    /// use spool_vm::serde_data::describe;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Point { x: f64, y: f64 }
    ///
    /// let source = describe::<Point>().unwrap().source();
    /// assert_eq!(source, "struct Point { x: float, y: float }\n");
    /// ```
    pub fn source(&self) -> String {
        self.declarations
            .iter()
            .map(|(_, declaration)| format!("{declaration}\n"))
            .collect()
    }
}

/// Types that have a Spool type: every type that converts both ways.
///
/// ```
/// use spool_vm::serde_data::SpoolType;
/// use std::collections::BTreeMap;
///
/// let shape = <BTreeMap<String, Option<Vec<i32>>>>::spool_type().unwrap();
/// assert_eq!(shape.ty, "[str: [int]?]");
/// assert!(shape.declarations.is_empty());
/// ```
pub trait SpoolType {
    /// The Spool type of `Self` and the declarations it needs; see
    /// [`describe`].
    ///
    /// ```
    /// use spool_vm::serde_data::SpoolType;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Point { x: f64, y: f64 }
    ///
    /// assert_eq!(<[Point; 2]>::spool_type().unwrap().ty, "[Point]");
    /// ```
    fn spool_type() -> Result<SpoolShape, DataError>;
}

impl<T: Serialize + DeserializeOwned> SpoolType for T {
    fn spool_type() -> Result<SpoolShape, DataError> {
        describe::<T>()
    }
}

/// Why a value could not be converted or a type described, and where.
///
/// ```
/// use spool_vm::serde_data::from_data;
/// use spool_vm::Data;
///
/// let data = Data::Map(vec![(Data::str("a"), Data::List(vec![Data::Nil]))]);
/// let error = from_data::<std::collections::HashMap<String, Vec<i64>>>(&data).unwrap_err();
/// assert_eq!(error.path(), "[\"a\"][0]");
/// assert_eq!(error.message(), "expected an int, found nil");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    /// The place inside the value, innermost segment first: an error
    /// collects its path on the way out of the value.
    path: Vec<Segment>,
    /// What went wrong, without the place.
    message: String,
    /// A trace met a value it cannot build yet; `describe` tries another
    /// way before reporting it.
    cut: bool,
}

impl DataError {
    /// Where inside the value the error is, as `.orders[3].total`; empty at
    /// the top.
    ///
    /// ```
    /// let error = spool_vm::serde_data::from_data::<(i64, i64)>(&spool_vm::Data::Nil).unwrap_err();
    /// assert_eq!(error.path(), "");
    /// ```
    pub fn path(&self) -> String {
        self.path.iter().rev().map(ToString::to_string).collect()
    }

    /// What went wrong, without the place.
    ///
    /// ```
    /// let error = spool_vm::serde_data::from_data::<bool>(&spool_vm::Data::Int(1)).unwrap_err();
    /// assert_eq!(error.message(), "expected a bool, found an int");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(message: impl Into<String>) -> DataError {
        DataError {
            path: Vec::new(),
            message: message.into(),
            cut: false,
        }
    }

    fn cut(message: impl Into<String>) -> DataError {
        DataError {
            cut: true,
            ..DataError::new(message)
        }
    }

    fn within(mut self, segment: Segment) -> DataError {
        self.path.push(segment);
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.path(), self.message)
        }
    }
}

impl std::error::Error for DataError {}

/// Hosts that report errors as text can use `?` on a [`DataError`].
///
/// ```
/// fn ty() -> Result<String, String> {
///     Ok(spool_vm::serde_data::describe::<(i64, String)>()?.ty)
/// }
/// assert!(ty().unwrap_err().starts_with("Spool has no tuples"));
/// ```
impl From<DataError> for String {
    fn from(error: DataError) -> String {
        error.to_string()
    }
}

impl ser::Error for DataError {
    fn custom<T: fmt::Display>(message: T) -> DataError {
        DataError::new(message.to_string())
    }
}

impl de::Error for DataError {
    fn custom<T: fmt::Display>(message: T) -> DataError {
        DataError::new(message.to_string())
    }
}

/// One step of a [`DataError`]'s path.
#[derive(Clone, Debug, PartialEq)]
enum Segment {
    /// A record's field: `.total`.
    Field(String),
    /// A list's item: `[3]`.
    Index(usize),
    /// A map's entry, the key as Spool writes it: `["alice"]`.
    Key(String),
    /// An item of a variant's payload: `.Rect.1`.
    Payload(String, usize),
}

impl Segment {
    fn key(key: &Data) -> Segment {
        Segment::Key(match key {
            Data::Str(text) => format!("{text:?}"),
            Data::Int(n) => n.to_string(),
            Data::Bool(b) => b.to_string(),
            other => describe_data(other),
        })
    }

    fn item(variant: Option<&str>, index: usize) -> Segment {
        match variant {
            Some(variant) => Segment::Payload(variant.to_string(), index),
            None => Segment::Index(index),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Field(name) => write!(f, ".{name}"),
            Segment::Index(index) => write!(f, "[{index}]"),
            Segment::Key(key) => write!(f, "[{key}]"),
            Segment::Payload(variant, index) => write!(f, ".{variant}.{index}"),
        }
    }
}

/// What a piece of data is, for messages: "a string", "a `User` record".
fn describe_data(data: &Data) -> String {
    match data {
        Data::Nil => "nil".to_string(),
        Data::Bool(_) => "a bool".to_string(),
        Data::Int(_) => "an int".to_string(),
        Data::Float(_) => "a float".to_string(),
        Data::Str(_) => "a string".to_string(),
        Data::List(_) => "a list".to_string(),
        Data::Map(_) => "a map".to_string(),
        Data::Record { name, .. } => format!("a `{name}` record"),
        Data::Variant { name, variant, .. } => format!("a `{name}.{variant}` value"),
    }
}

/// "1 value", "2 values".
fn values(count: usize) -> String {
    match count {
        1 => "1 value".to_string(),
        _ => format!("{count} values"),
    }
}

fn mismatch(expected: &str, found: &Data) -> DataError {
    DataError::new(format!(
        "expected {expected}, found {}",
        describe_data(found)
    ))
}

// ---------------------------------------------------------------- Rust to Data

/// Serializes into [`Data`]; the serializer behind [`to_data`].
struct DataSerializer;

fn int_from<N: TryInto<i64> + fmt::Display + Copy>(n: N) -> Result<Data, DataError> {
    n.try_into().map(Data::Int).map_err(|_| {
        DataError::new(format!(
            "the integer {n} does not fit in an int (64-bit signed)"
        ))
    })
}

fn payload_item<T: Serialize + ?Sized>(
    value: &T,
    variant: &str,
    index: usize,
) -> Result<Data, DataError> {
    value
        .serialize(DataSerializer)
        .map_err(|error| error.within(Segment::Payload(variant.to_string(), index)))
}

impl ser::Serializer for DataSerializer {
    type Ok = Data;
    type Error = DataError;
    type SerializeSeq = ListBuilder;
    type SerializeTuple = ListBuilder;
    type SerializeTupleStruct = ListBuilder;
    type SerializeTupleVariant = VariantBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = RecordBuilder;
    type SerializeStructVariant = VariantBuilder;

    fn serialize_bool(self, v: bool) -> Result<Data, DataError> {
        Ok(Data::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Data, DataError> {
        Ok(Data::Int(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Data, DataError> {
        int_from(v)
    }

    fn serialize_u8(self, v: u8) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Data, DataError> {
        Ok(Data::Int(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Data, DataError> {
        int_from(v)
    }

    fn serialize_u128(self, v: u128) -> Result<Data, DataError> {
        int_from(v)
    }

    fn serialize_f32(self, v: f32) -> Result<Data, DataError> {
        Ok(Data::Float(v.into()))
    }

    fn serialize_f64(self, v: f64) -> Result<Data, DataError> {
        Ok(Data::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Data, DataError> {
        Ok(Data::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Data, DataError> {
        Ok(Data::str(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Data, DataError> {
        Ok(Data::List(v.iter().map(|&b| Data::Int(b.into())).collect()))
    }

    fn serialize_none(self) -> Result<Data, DataError> {
        Ok(Data::Nil)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Data, DataError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Data, DataError> {
        Ok(Data::Nil)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Data, DataError> {
        Ok(Data::Nil)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Data, DataError> {
        Ok(VariantBuilder::new(name, variant, 0).finish())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Data, DataError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Data, DataError> {
        let mut builder = VariantBuilder::new(name, variant, 1);
        builder.push(value)?;
        Ok(builder.finish())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ListBuilder, DataError> {
        Ok(ListBuilder::new(len.unwrap_or(0)))
    }

    fn serialize_tuple(self, len: usize) -> Result<ListBuilder, DataError> {
        Ok(ListBuilder::new(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<ListBuilder, DataError> {
        Ok(ListBuilder::new(len))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder, DataError> {
        Ok(VariantBuilder::new(name, variant, len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, DataError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<RecordBuilder, DataError> {
        Ok(RecordBuilder {
            name,
            fields: Vec::with_capacity(len),
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder, DataError> {
        Ok(VariantBuilder::new(name, variant, len))
    }
}

/// A list being serialized: a sequence, tuple or tuple struct.
struct ListBuilder {
    items: Vec<Data>,
}

impl ListBuilder {
    fn new(len: usize) -> ListBuilder {
        ListBuilder {
            items: Vec::with_capacity(len),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataError> {
        let index = self.items.len();
        let item = value
            .serialize(DataSerializer)
            .map_err(|error| error.within(Segment::Index(index)))?;
        self.items.push(item);
        Ok(())
    }
}

/// The three serde traits of a sequence (a list, a tuple, a tuple struct)
/// that all push items onto a [`ListBuilder`].
macro_rules! list_builder {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for ListBuilder {
            type Ok = Data;
            type Error = DataError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataError> {
                self.push(value)
            }

            fn end(self) -> Result<Data, DataError> {
                Ok(Data::List(self.items))
            }
        }
    )*};
}

list_builder!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// A map being serialized; `key` waits for its value.
struct MapBuilder {
    entries: Vec<(Data, Data)>,
    key: Option<Data>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Data;
    type Error = DataError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), DataError> {
        let key = key.serialize(DataSerializer)?;
        if !matches!(key, Data::Int(_) | Data::Str(_) | Data::Bool(_)) {
            let found = describe_data(&key);
            return Err(DataError::new(format!(
                "map keys must be int, str or bool, found {found}"
            )));
        }
        self.key = Some(key);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| DataError::new("a map value came without its key"))?;
        let value = value
            .serialize(DataSerializer)
            .map_err(|error| error.within(Segment::key(&key)))?;
        self.entries.push((key, value));
        Ok(())
    }

    fn end(self) -> Result<Data, DataError> {
        Ok(Data::Map(self.entries))
    }
}

/// A struct being serialized.
struct RecordBuilder {
    name: &'static str,
    fields: Vec<(String, Data)>,
}

impl ser::SerializeStruct for RecordBuilder {
    type Ok = Data;
    type Error = DataError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), DataError> {
        let value = value
            .serialize(DataSerializer)
            .map_err(|error| error.within(Segment::Field(key.to_string())))?;
        self.fields.push((key.to_string(), value));
        Ok(())
    }

    // A Spool record has every field; `skip_serializing_if` is nearly always
    // `Option::is_none`, whose value is `nil`.
    fn skip_field(&mut self, key: &'static str) -> Result<(), DataError> {
        self.fields.push((key.to_string(), Data::Nil));
        Ok(())
    }

    fn end(self) -> Result<Data, DataError> {
        Ok(Data::Record {
            name: self.name.to_string(),
            fields: self.fields,
        })
    }
}

/// An enum variant being serialized; struct variants' fields are
/// positional, like every Spool payload.
struct VariantBuilder {
    name: &'static str,
    variant: &'static str,
    payload: Vec<Data>,
}

impl VariantBuilder {
    fn new(name: &'static str, variant: &'static str, len: usize) -> VariantBuilder {
        VariantBuilder {
            name,
            variant,
            payload: Vec::with_capacity(len),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataError> {
        let item = payload_item(value, self.variant, self.payload.len())?;
        self.payload.push(item);
        Ok(())
    }

    fn finish(self) -> Data {
        Data::Variant {
            name: self.name.to_string(),
            variant: self.variant.to_string(),
            fields: self.payload,
        }
    }
}

impl ser::SerializeTupleVariant for VariantBuilder {
    type Ok = Data;
    type Error = DataError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), DataError> {
        self.push(value)
    }

    fn end(self) -> Result<Data, DataError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for VariantBuilder {
    type Ok = Data;
    type Error = DataError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), DataError> {
        self.push(value)
    }

    fn end(self) -> Result<Data, DataError> {
        Ok(self.finish())
    }
}

// ---------------------------------------------------------------- Data to Rust

/// Deserializes from borrowed [`Data`]; the deserializer behind
/// [`from_data`].
struct DataDeserializer<'de>(&'de Data);

impl<'de> DataDeserializer<'de> {
    fn int<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Int(n) => visitor.visit_i64(*n),
            other => Err(mismatch("an int", other)),
        }
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Float(x) => visitor.visit_f64(*x),
            other => Err(mismatch("a float", other)),
        }
    }

    fn string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Str(text) => visitor.visit_borrowed_str(text),
            other => Err(mismatch("a string", other)),
        }
    }

    fn bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let Data::List(items) = self.0 else {
            return Err(mismatch("a list of bytes", self.0));
        };
        let bytes = items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Data::Int(n) => u8::try_from(*n).map_err(|_| {
                    DataError::new(format!("expected a byte (0 to 255), found {n}"))
                        .within(Segment::Index(index))
                }),
                other => Err(mismatch("a byte", other).within(Segment::Index(index))),
            })
            .collect::<Result<Vec<u8>, DataError>>()?;
        visitor.visit_byte_buf(bytes)
    }

    fn list<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::List(items) => visit_items(items, None, visitor),
            other => Err(mismatch("a list", other)),
        }
    }

    fn nil<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Nil => visitor.visit_unit(),
            other => Err(mismatch("nil", other)),
        }
    }

    fn fields<V: Visitor<'de>>(self, expected: &str, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Map(entries) => visitor.visit_map(Entries { entries, next: 0 }),
            Data::Record { fields, .. } => visitor.visit_map(Fields { fields, next: 0 }),
            other => Err(mismatch(expected, other)),
        }
    }
}

macro_rules! forward_to_helper {
    ($($method:ident => $helper:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
            self.$helper(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for DataDeserializer<'de> {
    type Error = DataError;

    forward_to_helper! {
        deserialize_i8 => int;
        deserialize_i16 => int;
        deserialize_i32 => int;
        deserialize_i64 => int;
        deserialize_i128 => int;
        deserialize_u8 => int;
        deserialize_u16 => int;
        deserialize_u32 => int;
        deserialize_u64 => int;
        deserialize_u128 => int;
        deserialize_f32 => float;
        deserialize_f64 => float;
        deserialize_str => string;
        deserialize_string => string;
        deserialize_identifier => string;
        deserialize_bytes => bytes;
        deserialize_byte_buf => bytes;
        deserialize_seq => list;
        deserialize_unit => nil;
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Nil => visitor.visit_unit(),
            Data::Bool(b) => visitor.visit_bool(*b),
            Data::Int(n) => visitor.visit_i64(*n),
            Data::Float(x) => visitor.visit_f64(*x),
            Data::Str(text) => visitor.visit_borrowed_str(text),
            Data::List(items) => visit_items(items, None, visitor),
            Data::Map(entries) => visitor.visit_map(Entries { entries, next: 0 }),
            Data::Record { fields, .. } => visitor.visit_map(Fields { fields, next: 0 }),
            Data::Variant {
                variant, fields, ..
            } => visitor.visit_enum(VariantData {
                variant,
                payload: fields,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Bool(b) => visitor.visit_bool(*b),
            other => Err(mismatch("a bool", other)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let mut chars = self.0.as_str().unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(mismatch("a one-character string", self.0)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.nil(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.list(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.list(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        self.fields("a map", visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.fields(&format!("a `{name}` record"), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        match self.0 {
            Data::Variant {
                variant, fields, ..
            } => visitor.visit_enum(VariantData {
                variant,
                payload: fields,
            }),
            // A bare name is a variant without payload, as JSON writes one.
            Data::Str(variant) => visitor.visit_enum(VariantData {
                variant,
                payload: &[],
            }),
            other => Err(mismatch(&format!("a `{name}` value"), other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        visitor.visit_unit()
    }
}

/// Visits `items` as a sequence and refuses items left over (a tuple is
/// shorter than the list). `variant` names the payload the items are.
fn visit_items<'de, V: Visitor<'de>>(
    items: &'de [Data],
    variant: Option<&'de str>,
    visitor: V,
) -> Result<V::Value, DataError> {
    let mut access = Items {
        items,
        next: 0,
        variant,
    };
    let value = visitor.visit_seq(&mut access)?;
    if access.next < items.len() {
        let (expected, found) = (access.next, items.len());
        return Err(DataError::new(match variant {
            Some(variant) => format!(
                "expected {} in `{variant}`, found {found}",
                values(expected)
            ),
            None => format!("expected a list of {expected} items, found {found}"),
        }));
    }
    Ok(value)
}

/// The items of a list or of a variant's payload.
struct Items<'de> {
    items: &'de [Data],
    next: usize,
    variant: Option<&'de str>,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = DataError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let index = self.next;
        self.next += 1;
        seed.deserialize(DataDeserializer(item))
            .map(Some)
            .map_err(|error| error.within(Segment::item(self.variant, index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

/// The entries of a map.
struct Entries<'de> {
    entries: &'de [(Data, Data)],
    next: usize,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DataError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some((key, _)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(DataDeserializer(key))
            .map(Some)
            .map_err(|error| error.within(Segment::key(key)))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DataError> {
        let (key, value) = self
            .entries
            .get(self.next)
            .ok_or_else(|| DataError::new("a map value was asked for after the last entry"))?;
        self.next += 1;
        seed.deserialize(DataDeserializer(value))
            .map_err(|error| error.within(Segment::key(key)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// The fields of a record, by name.
struct Fields<'de> {
    fields: &'de [(String, Data)],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = DataError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some((name, _)) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<DataError>::new(name))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DataError> {
        let (name, value) = self
            .fields
            .get(self.next)
            .ok_or_else(|| DataError::new("a field was asked for after the last one"))?;
        self.next += 1;
        seed.deserialize(DataDeserializer(value))
            .map_err(|error| error.within(Segment::Field(name.clone())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// An enum value: the variant's name and its payload.
struct VariantData<'de> {
    variant: &'de str,
    payload: &'de [Data],
}

impl<'de> VariantData<'de> {
    fn arity(&self, expected: usize) -> Result<(), DataError> {
        if self.payload.len() == expected {
            return Ok(());
        }
        Err(DataError::new(format!(
            "expected {} in `{}`, found {}",
            values(expected),
            self.variant,
            self.payload.len()
        )))
    }
}

impl<'de> EnumAccess<'de> for VariantData<'de> {
    type Error = DataError;
    type Variant = VariantData<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantData<'de>), DataError> {
        let value = seed.deserialize(BorrowedStrDeserializer::<DataError>::new(self.variant))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for VariantData<'de> {
    type Error = DataError;

    fn unit_variant(self) -> Result<(), DataError> {
        self.arity(0)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DataError> {
        self.arity(1)?;
        seed.deserialize(DataDeserializer(&self.payload[0]))
            .map_err(|error| error.within(Segment::Payload(self.variant.to_string(), 0)))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        visit_items(self.payload, Some(self.variant), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        visit_items(self.payload, Some(self.variant), visitor)
    }
}

// ---------------------------------------------------------------- Rust types to Spool types

/// How many passes through `T::deserialize` a description may take; each
/// pass but the last learns a variant or blames one, so this is far more
/// than any real type needs.
const MAX_PASSES: usize = 10_000;

/// How deeply a traced value may nest structs and enums before the trace
/// decides it never ends.
const MAX_TRACE_DEPTH: usize = 128;

/// Words Spool reserves; no declared name may be one.
const KEYWORDS: &[&str] = &[
    "fn", "let", "if", "else", "while", "for", "in", "break", "continue", "return", "match",
    "struct", "enum", "yield", "spawn", "await", "defer", "try", "catch", "throw", "true", "false",
    "nil", "yields", "receives", "select",
];

/// Type names Spool defines itself, which no struct or enum may take
/// (the compiler's list too).
pub const BUILTIN_TYPES: &[&str] = &[
    "int",
    "float",
    "bool",
    "str",
    "nil",
    "any",
    "Coro",
    "Task",
    "Chan",
    "Mutex",
    "WaitGroup",
    "ErrGroup",
];

/// What [`describe`] says of a type whose shape comes from the data.
pub const UNTYPED: &str = "this type takes its shape from the data (an untagged or internally \
     tagged enum, a flattened field, or a dynamic value), so it has no Spool type";

/// A place in the traced type: an index into [`Tracer::forms`].
type Place = usize;

/// What a trace knows of the type at one place.
#[derive(Clone, Debug, PartialEq)]
enum Form {
    /// Not traced yet.
    Unknown,
    Nil,
    Bool,
    Int,
    Float,
    Str,
    /// A list of the type at the place.
    List(Place),
    /// A map from the first place's type to the second's.
    Map(Place, Place),
    /// An optional.
    Optional(Place),
    /// A tuple or array: a list once every item has the same type.
    Tuple(Vec<Place>),
    /// A struct or enum, declared in [`Tracer::structs`] or
    /// [`Tracer::enums`].
    Named(&'static str),
}

/// How far a variant's trace has got.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Progress {
    /// Not traced yet.
    Untraced,
    /// Being traced for the first time in this pass.
    Started,
    /// Its last trace needed a value of its own enum before any other
    /// variant was known; it waits until the trace learns something new.
    Blocked,
    /// Traced: its payload's places are known.
    Done,
}

/// One variant of a traced enum.
#[derive(Debug)]
struct VariantTrace {
    name: &'static str,
    /// The payload's places, once the variant has been entered.
    payload: Option<Vec<Place>>,
    progress: Progress,
}

/// The state of [`describe`]: everything learned of the type so far, and
/// where the current pass is.
#[derive(Debug, Default)]
struct Tracer {
    /// The form learned at each place. A struct's fields and a variant's
    /// payload have one place for every value of the type, so recursion
    /// comes back to places already known.
    forms: Vec<Form>,
    /// Each struct met, with its fields' names and places in order.
    structs: HashMap<&'static str, Vec<(&'static str, Place)>>,
    /// Each enum met, with its variants in order.
    enums: HashMap<&'static str, Vec<VariantTrace>>,
    /// The structs and enums whose values are being built, outermost first.
    active: Vec<&'static str>,
    /// The variants being traced for the first time, innermost last: the one
    /// a cut blames.
    exploring: Vec<(&'static str, usize)>,
}

impl Tracer {
    /// Runs passes through `T::deserialize` until every place and variant
    /// reachable from `root` is known.
    fn trace<T: DeserializeOwned>(&mut self, root: Place) -> Result<(), DataError> {
        for _ in 0..MAX_PASSES {
            let before = self.progress();
            let outcome = T::deserialize(Probe {
                tracer: self,
                place: root,
            });
            let progressed = self.progress() != before;
            let blamed = self.end_pass();
            if progressed {
                self.unblock_all();
            }
            match outcome {
                Ok(_) if self.complete(root) => return Ok(()),
                Ok(_) if progressed => {}
                Ok(_) => return Err(self.stuck()),
                Err(error) if !error.cut => return Err(error),
                Err(_) if progressed => {}
                Err(error) => match blamed {
                    Some((name, index)) => self.set_progress(name, index, Progress::Blocked),
                    None => {
                        return Err(DataError {
                            cut: false,
                            ..error
                        })
                    }
                },
            }
        }
        Err(DataError::new("the type has too many variants to trace"))
    }

    /// How much is known: places with a form and variants traced.
    fn progress(&self) -> (usize, usize) {
        let known = self.forms.iter().filter(|form| **form != Form::Unknown);
        let done = self.variants().filter(|v| v.progress == Progress::Done);
        (known.count(), done.count())
    }

    fn variants(&self) -> impl Iterator<Item = &VariantTrace> + '_ {
        self.enums.values().flatten()
    }

    /// Forgets where the pass was; gives the variant to blame if it was cut.
    fn end_pass(&mut self) -> Option<(&'static str, usize)> {
        for variant in self.enums.values_mut().flatten() {
            if variant.progress == Progress::Started {
                variant.progress = Progress::Untraced;
            }
        }
        self.active.clear();
        let blamed = self.exploring.last().copied();
        self.exploring.clear();
        blamed
    }

    fn unblock_all(&mut self) {
        for variant in self.enums.values_mut().flatten() {
            if variant.progress == Progress::Blocked {
                variant.progress = Progress::Untraced;
            }
        }
    }

    fn set_progress(&mut self, name: &str, index: usize, progress: Progress) {
        if let Some(variant) = self.enums.get_mut(name).and_then(|v| v.get_mut(index)) {
            variant.progress = progress;
        }
    }

    /// Is everything reachable from `root` known, every variant included?
    fn complete(&self, root: Place) -> bool {
        !self.incomplete_from(root, &mut Vec::new())
            && self.variants().all(|v| v.progress == Progress::Done)
    }

    /// Why passes stopped learning before the type was known.
    fn stuck(&self) -> DataError {
        let mut names: Vec<_> = self.enums.keys().copied().collect();
        names.sort_unstable();
        for name in names {
            for variant in &self.enums[name] {
                if variant.progress == Progress::Blocked {
                    return DataError::new(format!(
                        "no value of `{name}.{}` can be built: each one contains another `{name}`",
                        variant.name
                    ));
                }
            }
        }
        DataError::new("the trace could not reach every variant of the type")
    }

    fn new_place(&mut self) -> Place {
        self.forms.push(Form::Unknown);
        self.forms.len() - 1
    }

    /// Records a leaf form or a name at `place`.
    fn settle(&mut self, place: Place, form: Form) -> Result<(), DataError> {
        match &self.forms[place] {
            Form::Unknown => {
                self.forms[place] = form;
                Ok(())
            }
            known if *known == form => Ok(()),
            known => Err(self.conflict(known, &form)),
        }
    }

    /// The place of the optional's value at `place`, and whether it is new.
    fn optional(&mut self, place: Place) -> Result<(Place, bool), DataError> {
        match self.forms[place] {
            Form::Optional(inner) => Ok((inner, false)),
            Form::Unknown => {
                let inner = self.new_place();
                self.forms[place] = Form::Optional(inner);
                Ok((inner, true))
            }
            ref known => Err(self.conflict(known, &Form::Optional(place))),
        }
    }

    /// The place of the list's items at `place`, and whether it is new.
    fn list(&mut self, place: Place) -> Result<(Place, bool), DataError> {
        match self.forms[place] {
            Form::List(item) => Ok((item, false)),
            Form::Unknown => {
                let item = self.new_place();
                self.forms[place] = Form::List(item);
                Ok((item, true))
            }
            ref known => Err(self.conflict(known, &Form::List(place))),
        }
    }

    /// The places of the map's keys and values at `place`, and whether they
    /// are new.
    fn map(&mut self, place: Place) -> Result<(Place, Place, bool), DataError> {
        match self.forms[place] {
            Form::Map(key, value) => Ok((key, value, false)),
            Form::Unknown => {
                let (key, value) = (self.new_place(), self.new_place());
                self.forms[place] = Form::Map(key, value);
                Ok((key, value, true))
            }
            ref known => Err(self.conflict(known, &Form::Map(place, place))),
        }
    }

    /// The places of the tuple's items at `place`.
    fn tuple(&mut self, place: Place, len: usize) -> Result<Vec<Place>, DataError> {
        match &self.forms[place] {
            Form::Tuple(items) if items.len() == len => Ok(items.clone()),
            Form::Unknown => {
                let items: Vec<Place> = (0..len).map(|_| self.new_place()).collect();
                self.forms[place] = Form::Tuple(items.clone());
                Ok(items)
            }
            known => Err(self.conflict(known, &Form::Tuple(vec![place; len]))),
        }
    }

    fn conflict(&self, known: &Form, wanted: &Form) -> DataError {
        DataError::new(format!(
            "one place holds both {} and {}: two Rust types share a name (a generic type \
             used with different arguments?), and Spool needs one declaration per name",
            self.sketch(known),
            self.sketch(wanted)
        ))
    }

    /// A form for messages, `_` where nothing is known.
    fn sketch(&self, form: &Form) -> String {
        let at = |place: &Place| self.sketch(&self.forms[*place]);
        match form {
            Form::Unknown => "_".to_string(),
            Form::Nil => "nil".to_string(),
            Form::Bool => "bool".to_string(),
            Form::Int => "int".to_string(),
            Form::Float => "float".to_string(),
            Form::Str => "str".to_string(),
            Form::List(_) => "a list".to_string(),
            Form::Map(..) => "a map".to_string(),
            Form::Optional(_) => "an optional".to_string(),
            Form::Tuple(items) => {
                format!("({})", items.iter().map(at).collect::<Vec<_>>().join(", "))
            }
            Form::Named(name) => format!("`{name}`"),
        }
    }

    /// The fields' places of struct `name`, registering it the first time.
    fn register_struct(
        &mut self,
        name: &'static str,
        fields: &'static [&'static str],
    ) -> Result<Vec<(&'static str, Place)>, DataError> {
        if self.enums.contains_key(name) {
            return Err(same_name(name));
        }
        if let Some(known) = self.structs.get(name) {
            if !known.iter().map(|(field, _)| field).eq(fields.iter()) {
                return Err(same_name(name));
            }
            return Ok(known.clone());
        }
        let places: Vec<_> = fields.iter().map(|&f| (f, self.new_place())).collect();
        self.structs.insert(name, places.clone());
        Ok(places)
    }

    /// Registers enum `name` the first time it is met.
    fn register_enum(
        &mut self,
        name: &'static str,
        variants: &'static [&'static str],
    ) -> Result<(), DataError> {
        if variants.is_empty() {
            return Err(DataError::new(format!(
                "enum `{name}` has no variants, so no values"
            )));
        }
        if self.structs.contains_key(name) {
            return Err(same_name(name));
        }
        if let Some(known) = self.enums.get(name) {
            if !known.iter().map(|v| &v.name).eq(variants.iter()) {
                return Err(same_name(name));
            }
            return Ok(());
        }
        let traces = variants.iter().map(|&variant| VariantTrace {
            name: variant,
            payload: None,
            progress: Progress::Untraced,
        });
        self.enums.insert(name, traces.collect());
        Ok(())
    }

    /// Starts building a value of `name`; a value nested too deeply is cut.
    fn enter(&mut self, name: &'static str) -> Result<(), DataError> {
        if self.active.len() >= MAX_TRACE_DEPTH {
            return Err(DataError::cut(format!(
                "values of `{name}` nest without end: each one contains another"
            )));
        }
        self.active.push(name);
        Ok(())
    }

    /// Which variant of the active enum `name` to build: a new one if any is
    /// left, else a known one that leads to something unknown, else a known
    /// one that does not lead straight back into a value being built.
    fn choose_variant(&mut self, name: &'static str) -> Result<usize, DataError> {
        let variants = &self.enums[name];
        if let Some(index) = variants
            .iter()
            .position(|v| v.progress == Progress::Untraced)
        {
            self.set_progress(name, index, Progress::Started);
            self.exploring.push((name, index));
            return Ok(index);
        }
        let done: Vec<(usize, &[Place])> = variants
            .iter()
            .enumerate()
            .filter(|(_, v)| v.progress == Progress::Done)
            .map(|(index, v)| (index, v.payload.as_deref().unwrap_or_default()))
            .collect();
        let leads_on = done
            .iter()
            .find(|(_, payload)| payload.iter().any(|&p| self.incomplete(p)));
        let finite = done
            .iter()
            .find(|(_, payload)| !payload.iter().any(|&p| self.forces_active(p)));
        leads_on
            .or(finite)
            .or(done.first())
            .map(|(index, _)| *index)
            .ok_or_else(|| {
                DataError::cut(format!(
                    "no value of `{name}` can be built: each variant contains another `{name}`"
                ))
            })
    }

    /// Marks variant `index` of `name` traced if this pass traced it.
    fn finish_variant(&mut self, name: &'static str, index: usize) {
        if self.exploring.last() == Some(&(name, index)) {
            self.exploring.pop();
            self.set_progress(name, index, Progress::Done);
        }
    }

    /// The places of a variant's payload of `len` values.
    fn payload(
        &mut self,
        name: &'static str,
        index: usize,
        len: usize,
    ) -> Result<Vec<Place>, DataError> {
        if let Some(places) = &self.enums[name][index].payload {
            if places.len() != len {
                return Err(same_name(name));
            }
            return Ok(places.clone());
        }
        let places: Vec<Place> = (0..len).map(|_| self.new_place()).collect();
        if let Some(variant) = self.enums.get_mut(name).and_then(|v| v.get_mut(index)) {
            variant.payload = Some(places.clone());
        }
        Ok(places)
    }

    /// Does building a value at `place` teach anything? Values being built
    /// count as known: going into one again teaches nothing new.
    fn incomplete(&self, place: Place) -> bool {
        self.incomplete_from(place, &mut self.active.clone())
    }

    fn incomplete_from(&self, place: Place, seen: &mut Vec<&'static str>) -> bool {
        match &self.forms[place] {
            Form::Unknown => true,
            Form::List(item) | Form::Optional(item) => self.incomplete_from(*item, seen),
            Form::Map(key, value) => {
                self.incomplete_from(*key, seen) || self.incomplete_from(*value, seen)
            }
            Form::Tuple(items) => items.iter().any(|&item| self.incomplete_from(item, seen)),
            Form::Named(name) if !seen.contains(name) => {
                seen.push(name);
                self.declaration_incomplete(name, seen)
            }
            _ => false,
        }
    }

    fn declaration_incomplete(&self, name: &str, seen: &mut Vec<&'static str>) -> bool {
        if let Some(fields) = self.structs.get(name) {
            return fields.iter().any(|&(_, p)| self.incomplete_from(p, seen));
        }
        let Some(variants) = self.enums.get(name) else {
            return false;
        };
        variants.iter().any(|variant| match variant.progress {
            Progress::Untraced => true,
            Progress::Done => variant
                .payload
                .iter()
                .flatten()
                .any(|&p| self.incomplete_from(p, seen)),
            Progress::Started | Progress::Blocked => false,
        })
    }

    /// Must a value at `place` contain a value being built (so building it
    /// may never end)?
    fn forces_active(&self, place: Place) -> bool {
        match &self.forms[place] {
            Form::Named(name) => self.active.contains(name),
            Form::Tuple(items) => items.iter().any(|&item| self.forces_active(item)),
            _ => false,
        }
    }

    /// The description of the type at `root`, once it is all known.
    fn description(&self, root: Place) -> Result<SpoolShape, DataError> {
        let ty = self.expr(root).map_err(DataError::new)?;
        let mut declarations = Vec::new();
        self.declare_from(root, &mut HashSet::new(), &mut declarations)?;
        Ok(SpoolShape { ty, declarations })
    }

    /// The Spool type at `place`, or why it has none.
    fn expr(&self, place: Place) -> Result<String, String> {
        Ok(match &self.forms[place] {
            Form::Unknown => return Err("a type could not be traced".to_string()),
            Form::Nil => "nil".to_string(),
            Form::Bool => "bool".to_string(),
            Form::Int => "int".to_string(),
            Form::Float => "float".to_string(),
            Form::Str => "str".to_string(),
            Form::List(item) => format!("[{}]", self.expr(*item)?),
            Form::Map(key, value) => self.map_expr(*key, *value)?,
            Form::Optional(inner) => match self.forms[*inner] {
                // `T??` holds nothing `T?` does not: `Some(None)` is `nil`.
                Form::Optional(_) | Form::Nil => self.expr(*inner)?,
                _ => format!("{}?", self.expr(*inner)?),
            },
            Form::Tuple(items) => self.tuple_expr(items)?,
            Form::Named(name) => name.to_string(),
        })
    }

    fn map_expr(&self, key: Place, value: Place) -> Result<String, String> {
        let key_expr = self.expr(key)?;
        if !matches!(self.forms[key], Form::Int | Form::Str | Form::Bool) {
            return Err(format!(
                "map keys must be int, str or bool, not `{key_expr}`"
            ));
        }
        Ok(format!("[{key_expr}: {}]", self.expr(value)?))
    }

    fn tuple_expr(&self, items: &[Place]) -> Result<String, String> {
        let exprs = items
            .iter()
            .map(|&item| self.expr(item))
            .collect::<Result<Vec<_>, _>>()?;
        match exprs.split_first() {
            Some((first, rest)) if rest.iter().all(|expr| expr == first) => {
                Ok(format!("[{first}]"))
            }
            Some(_) => Err(format!(
                "Spool has no tuples: `({})` mixes types, and only a tuple or array whose \
                 items share one type is a list",
                exprs.join(", ")
            )),
            None => Err("an empty tuple or array has no Spool type".to_string()),
        }
    }

    /// Appends the declarations `place` reaches, each after those it needs.
    fn declare_from(
        &self,
        place: Place,
        seen: &mut HashSet<&'static str>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), DataError> {
        match &self.forms[place] {
            Form::List(item) | Form::Optional(item) => self.declare_from(*item, seen, out),
            Form::Map(key, value) => {
                self.declare_from(*key, seen, out)?;
                self.declare_from(*value, seen, out)
            }
            Form::Tuple(items) => items
                .iter()
                .try_for_each(|&item| self.declare_from(item, seen, out)),
            Form::Named(name) if seen.insert(name) => self.declare(name, seen, out),
            _ => Ok(()),
        }
    }

    fn declare(
        &self,
        name: &'static str,
        seen: &mut HashSet<&'static str>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), DataError> {
        if let Some(fields) = self.structs.get(name) {
            for &(_, place) in fields {
                self.declare_from(place, seen, out)?;
            }
            out.push((name.to_string(), self.struct_source(name, fields)?));
        } else if let Some(variants) = self.enums.get(name) {
            for &place in variants.iter().flat_map(|v| v.payload.iter().flatten()) {
                self.declare_from(place, seen, out)?;
            }
            out.push((name.to_string(), self.enum_source(name, variants)?));
        }
        Ok(())
    }

    /// `struct User { id: int, name: str }`.
    fn struct_source(
        &self,
        name: &str,
        fields: &[(&'static str, Place)],
    ) -> Result<String, DataError> {
        check_type_name(name)?;
        let fields = fields
            .iter()
            .map(|&(field, place)| {
                let context = |message| format!("field `{field}` of `{name}`: {message}");
                check_identifier(field).map_err(|message| DataError::new(context(message)))?;
                let expr = self.expr(place).map_err(|m| DataError::new(context(m)))?;
                Ok(format!("{field}: {expr}"))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        if fields.is_empty() {
            return Ok(format!("struct {name} {{}}"));
        }
        Ok(format!("struct {name} {{ {} }}", fields.join(", ")))
    }

    /// `enum Status { Active, Banned(str) }`.
    fn enum_source(&self, name: &str, variants: &[VariantTrace]) -> Result<String, DataError> {
        check_type_name(name)?;
        let variants = variants
            .iter()
            .map(|variant| {
                let context =
                    |message| format!("variant `{}` of `{name}`: {message}", variant.name);
                check_identifier(variant.name).map_err(|m| DataError::new(context(m)))?;
                let payload = variant.payload.as_deref().unwrap_or_default();
                if payload.is_empty() {
                    return Ok(variant.name.to_string());
                }
                let exprs = payload
                    .iter()
                    .map(|&place| self.expr(place))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| DataError::new(context(m)))?;
                Ok(format!("{}({})", variant.name, exprs.join(", ")))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        Ok(format!("enum {name} {{ {} }}", variants.join(", ")))
    }
}

fn same_name(name: &str) -> DataError {
    DataError::new(format!(
        "two different Rust types are both named `{name}`; Spool needs one declaration per name"
    ))
}

/// Is `name` a Spool identifier that is not a keyword?
fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a Spool identifier"));
    }
    if KEYWORDS.contains(&name) {
        return Err(format!("`{name}` is a Spool keyword"));
    }
    Ok(())
}

fn check_type_name(name: &str) -> Result<(), DataError> {
    check_identifier(name).map_err(DataError::new)?;
    if BUILTIN_TYPES.contains(&name) {
        return Err(DataError::new(format!(
            "`{name}` is a Spool built-in type and cannot be declared"
        )));
    }
    Ok(())
}

/// The tracing deserializer: records at `place` what the type asks for and
/// answers with a sample value.
struct Probe<'t> {
    tracer: &'t mut Tracer,
    place: Place,
}

impl Probe<'_> {
    fn at(tracer: &mut Tracer, place: Place) -> Probe<'_> {
        Probe { tracer, place }
    }
}

macro_rules! probe_leaf {
    ($($method:ident => $form:ident, $visit:ident($sample:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
            self.tracer.settle(self.place, Form::$form)?;
            visitor.$visit($sample)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = DataError;

    // Samples are values every type of the kind accepts: 1 rather than 0
    // because of `NonZeroU32` and friends.
    probe_leaf! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => Int, visit_i8(1);
        deserialize_i16 => Int, visit_i16(1);
        deserialize_i32 => Int, visit_i32(1);
        deserialize_i64 => Int, visit_i64(1);
        deserialize_i128 => Int, visit_i128(1);
        deserialize_u8 => Int, visit_u8(1);
        deserialize_u16 => Int, visit_u16(1);
        deserialize_u32 => Int, visit_u32(1);
        deserialize_u64 => Int, visit_u64(1);
        deserialize_u128 => Int, visit_u128(1);
        deserialize_f32 => Float, visit_f32(0.0);
        deserialize_f64 => Float, visit_f64(0.0);
        deserialize_char => Str, visit_char('a');
        deserialize_str => Str, visit_str("");
        deserialize_string => Str, visit_str("");
        deserialize_identifier => Str, visit_str("");
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        self.tracer.settle(self.place, Form::Nil)?;
        visitor.visit_unit()
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DataError> {
        Err(DataError::new(UNTYPED))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let (item, _) = self.tracer.list(self.place)?;
        self.tracer.settle(item, Form::Int)?;
        visitor.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let (inner, fresh) = self.tracer.optional(self.place)?;
        if fresh || self.tracer.incomplete(inner) {
            visitor.visit_some(Probe::at(self.tracer, inner))
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let (item, fresh) = self.tracer.list(self.place)?;
        let wanted = fresh || self.tracer.incomplete(item);
        let items = if wanted { vec![item] } else { Vec::new() };
        visitor.visit_seq(ItemProbes::new(self.tracer, items, None))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        let items = self.tracer.tuple(self.place, len)?;
        visitor.visit_seq(ItemProbes::new(self.tracer, items, None))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DataError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        let (key, value, fresh) = self.tracer.map(self.place)?;
        let wanted = fresh || self.tracer.incomplete(key) || self.tracer.incomplete(value);
        visitor.visit_map(EntryProbe {
            tracer: self.tracer,
            entry: wanted.then_some((key, value)),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        let Probe { tracer, place } = self;
        tracer.settle(place, Form::Named(name))?;
        let fields = tracer.register_struct(name, fields)?;
        tracer.enter(name)?;
        let value = visitor.visit_map(FieldProbes {
            tracer: &mut *tracer,
            fields,
            next: 0,
        })?;
        tracer.active.pop();
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        let Probe { tracer, place } = self;
        tracer.settle(place, Form::Named(name))?;
        tracer.register_enum(name, variants)?;
        tracer.enter(name)?;
        let index = tracer.choose_variant(name)?;
        let value = visitor.visit_enum(VariantProbe {
            tracer: &mut *tracer,
            name,
            index,
            variant: variants[index],
        })?;
        tracer.finish_variant(name, index);
        tracer.active.pop();
        Ok(value)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DataError> {
        visitor.visit_unit()
    }
}

/// The items a trace offers a sequence: one per place.
struct ItemProbes<'t> {
    tracer: &'t mut Tracer,
    places: std::vec::IntoIter<Place>,
    next: usize,
    /// The variant whose payload the items are, for error paths.
    variant: Option<&'static str>,
}

impl<'t> ItemProbes<'t> {
    fn new(tracer: &'t mut Tracer, places: Vec<Place>, variant: Option<&'static str>) -> Self {
        ItemProbes {
            tracer,
            places: places.into_iter(),
            next: 0,
            variant,
        }
    }
}

impl<'de> SeqAccess<'de> for ItemProbes<'_> {
    type Error = DataError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some(place) = self.places.next() else {
            return Ok(None);
        };
        let index = self.next;
        self.next += 1;
        seed.deserialize(Probe::at(self.tracer, place))
            .map(Some)
            .map_err(|error| error.within(Segment::item(self.variant, index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.places.len())
    }
}

/// The entry a trace offers a map: one, or none once the map is known.
struct EntryProbe<'t> {
    tracer: &'t mut Tracer,
    entry: Option<(Place, Place)>,
    value: Option<Place>,
}

impl<'de> MapAccess<'de> for EntryProbe<'_> {
    type Error = DataError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some((key, value)) = self.entry.take() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(Probe::at(self.tracer, key)).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DataError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| DataError::new("a map value was asked for before its key"))?;
        seed.deserialize(Probe::at(self.tracer, value))
    }
}

/// The fields a trace offers a struct, by name.
struct FieldProbes<'t> {
    tracer: &'t mut Tracer,
    fields: Vec<(&'static str, Place)>,
    next: usize,
}

impl<'de> MapAccess<'de> for FieldProbes<'_> {
    type Error = DataError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DataError> {
        let Some(&(name, _)) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<DataError>::new(name))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, DataError> {
        let &(name, place) = self
            .fields
            .get(self.next)
            .ok_or_else(|| DataError::new("a field was asked for after the last one"))?;
        self.next += 1;
        seed.deserialize(Probe::at(self.tracer, place))
            .map_err(|error| error.within(Segment::Field(name.to_string())))
    }
}

/// The variant a trace offers an enum: the one [`Tracer::choose_variant`]
/// chose.
struct VariantProbe<'t> {
    tracer: &'t mut Tracer,
    name: &'static str,
    index: usize,
    variant: &'static str,
}

impl<'t> VariantProbe<'t> {
    fn items(self, len: usize) -> Result<ItemProbes<'t>, DataError> {
        let places = self.tracer.payload(self.name, self.index, len)?;
        Ok(ItemProbes::new(self.tracer, places, Some(self.variant)))
    }
}

impl<'de, 't> EnumAccess<'de> for VariantProbe<'t> {
    type Error = DataError;
    type Variant = VariantProbe<'t>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantProbe<'t>), DataError> {
        let value = seed.deserialize(BorrowedStrDeserializer::<DataError>::new(self.variant))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for VariantProbe<'_> {
    type Error = DataError;

    fn unit_variant(self) -> Result<(), DataError> {
        self.tracer.payload(self.name, self.index, 0).map(drop)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DataError> {
        let mut items = self.items(1)?;
        items
            .next_element_seed(seed)?
            .ok_or_else(|| DataError::new("a payload went missing"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DataError> {
        visitor.visit_seq(self.items(len)?)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DataError> {
        visitor.visit_seq(self.items(fields.len())?)
    }
}
