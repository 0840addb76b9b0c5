//! Element data types and reduction operators, with their nccl-tests names and their byte encodings.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// An element type of a collective's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Int8,
    Uint8,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Half,
    Float,
    Double,
    Bfloat16,
    F8e4m3,
    F8e5m2,
}

impl DataType {
    /// Every type, in nccl-tests' order for `-d all`.
    pub const ALL: [DataType; 12] = [
        DataType::Int8,
        DataType::Uint8,
        DataType::Int32,
        DataType::Uint32,
        DataType::Int64,
        DataType::Uint64,
        DataType::Half,
        DataType::Float,
        DataType::Double,
        DataType::Bfloat16,
        DataType::F8e4m3,
        DataType::F8e5m2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataType::Int8 => "int8",
            DataType::Uint8 => "uint8",
            DataType::Int32 => "int32",
            DataType::Uint32 => "uint32",
            DataType::Int64 => "int64",
            DataType::Uint64 => "uint64",
            DataType::Half => "half",
            DataType::Float => "float",
            DataType::Double => "double",
            DataType::Bfloat16 => "bfloat16",
            DataType::F8e4m3 => "f8e4m3",
            DataType::F8e5m2 => "f8e5m2",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DataType::Int8 | DataType::Uint8 | DataType::F8e4m3 | DataType::F8e5m2 => 1,
            DataType::Half | DataType::Bfloat16 => 2,
            DataType::Int32 | DataType::Uint32 | DataType::Float => 4,
            DataType::Int64 | DataType::Uint64 | DataType::Double => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DataType::Half
                | DataType::Float
                | DataType::Double
                | DataType::Bfloat16
                | DataType::F8e4m3
                | DataType::F8e5m2
        )
    }

    /// The largest integer n such that every integer in 0..=n is exactly representable.
    /// The correctness check keeps every input and every exact result within this bound.
    pub fn exact_integer_limit(self) -> u64 {
        match self {
            DataType::Int8 => 127,
            DataType::Uint8 => 255,
            DataType::Half => 2048,
            DataType::Bfloat16 => 256,
            DataType::F8e4m3 => 16,
            DataType::F8e5m2 => 8,
            DataType::Float => 1 << 24,
            DataType::Int32 | DataType::Uint32 => i32::MAX as u64,
            DataType::Double => 1 << 53,
            DataType::Int64 | DataType::Uint64 => i64::MAX as u64,
        }
    }

    /// Writes a small non-negative integer value (exactly representable in this type) as its bytes.
    pub fn encode(self, value: u64, out: &mut [u8]) {
        debug_assert!(value <= self.exact_integer_limit());
        match self {
            DataType::Int8 | DataType::Uint8 => out[0] = value as u8,
            DataType::Int32 | DataType::Uint32 => {
                out.copy_from_slice(&(value as u32).to_ne_bytes())
            }
            DataType::Int64 | DataType::Uint64 => out.copy_from_slice(&value.to_ne_bytes()),
            DataType::Half => out.copy_from_slice(&half::f16::from_f64(value as f64).to_ne_bytes()),
            DataType::Bfloat16 => {
                out.copy_from_slice(&half::bf16::from_f64(value as f64).to_ne_bytes())
            }
            DataType::Float => out.copy_from_slice(&(value as f32).to_ne_bytes()),
            DataType::Double => out.copy_from_slice(&(value as f64).to_ne_bytes()),
            DataType::F8e4m3 => out[0] = f8_encode_small_integer(value, 3, 7),
            DataType::F8e5m2 => out[0] = f8_encode_small_integer(value, 2, 15),
        }
    }
}

/// Encodes an integer 0..=16 exactly into an 8-bit float with `mantissa_bits` and exponent `bias`
/// (OCP FP8: E4M3 has 3 mantissa bits and bias 7, E5M2 has 2 and bias 15).
fn f8_encode_small_integer(value: u64, mantissa_bits: u32, bias: u32) -> u8 {
    if value == 0 {
        return 0;
    }
    let exponent = 63 - value.leading_zeros(); // floor(log2 value)
    let fraction = value - (1 << exponent);
    let mantissa = if exponent >= mantissa_bits {
        fraction >> (exponent - mantissa_bits)
    } else {
        fraction << (mantissa_bits - exponent)
    };
    (((exponent + bias) << mantissa_bits) as u64 | mantissa) as u8
}

/// Decodes an 8-bit float (OCP FP8) with `mantissa_bits` and exponent `bias`; NaN and infinity
/// patterns are not produced by the check, so they decode as their finite reading.
fn f8_decode(byte: u8, mantissa_bits: u32, bias: i32) -> f64 {
    let sign = if byte & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = (byte >> mantissa_bits) as i32 & ((1 << (7 - mantissa_bits)) - 1);
    let mantissa = (byte & ((1 << mantissa_bits) - 1)) as f64;
    let magnitude = if exponent == 0 {
        mantissa * 2f64.powi(1 - bias - mantissa_bits as i32)
    } else {
        (1.0 + mantissa / (1 << mantissa_bits) as f64) * 2f64.powi(exponent - bias)
    };
    sign * magnitude
}

impl DataType {
    /// Writes a floating-point value rounded to the nearest value of this (floating) type.
    pub fn encode_f64(self, value: f64, out: &mut [u8]) {
        match self {
            DataType::Half => out.copy_from_slice(&half::f16::from_f64(value).to_ne_bytes()),
            DataType::Bfloat16 => out.copy_from_slice(&half::bf16::from_f64(value).to_ne_bytes()),
            DataType::Float => out.copy_from_slice(&(value as f32).to_ne_bytes()),
            DataType::Double => out.copy_from_slice(&value.to_ne_bytes()),
            DataType::F8e4m3 | DataType::F8e5m2 => {
                // 256 patterns: the nearest finite one is found by looking at each of the positive ones.
                out[0] = (0u8..0x7F)
                    .min_by(|&a, &b| {
                        (self.decode_f64(&[a]) - value)
                            .abs()
                            .total_cmp(&(self.decode_f64(&[b]) - value).abs())
                    })
                    .unwrap_or(0);
            }
            _ => self.encode(value.max(0.0) as u64, out),
        }
    }

    /// Reads one element as a floating-point number.
    pub fn decode_f64(self, bytes: &[u8]) -> f64 {
        match self {
            DataType::Int8 => bytes[0] as i8 as f64,
            DataType::Uint8 => bytes[0] as f64,
            DataType::Int32 => i32::from_ne_bytes(bytes[..4].try_into().unwrap_or_default()) as f64,
            DataType::Uint32 => {
                u32::from_ne_bytes(bytes[..4].try_into().unwrap_or_default()) as f64
            }
            DataType::Int64 => i64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default()) as f64,
            DataType::Uint64 => {
                u64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default()) as f64
            }
            DataType::Half => half::f16::from_ne_bytes([bytes[0], bytes[1]]).to_f64(),
            DataType::Bfloat16 => half::bf16::from_ne_bytes([bytes[0], bytes[1]]).to_f64(),
            DataType::Float => f32::from_ne_bytes(bytes[..4].try_into().unwrap_or_default()) as f64,
            DataType::Double => f64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default()),
            DataType::F8e4m3 => f8_decode(bytes[0], 3, 7),
            DataType::F8e5m2 => f8_decode(bytes[0], 2, 15),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // nccl-tests' names and the common aliases it accepts.
        let t = match s.to_ascii_lowercase().as_str() {
            "int8" | "char" | "i8" => DataType::Int8,
            "uint8" | "u8" => DataType::Uint8,
            "int32" | "int" | "i32" => DataType::Int32,
            "uint32" | "u32" => DataType::Uint32,
            "int64" | "i64" => DataType::Int64,
            "uint64" | "u64" => DataType::Uint64,
            "half" | "float16" | "fp16" | "f16" => DataType::Half,
            "float" | "float32" | "fp32" | "f32" => DataType::Float,
            "double" | "float64" | "fp64" | "f64" => DataType::Double,
            "bfloat16" | "bf16" => DataType::Bfloat16,
            "f8e4m3" | "fp8_e4m3" | "e4m3" => DataType::F8e4m3,
            "f8e5m2" | "fp8_e5m2" | "e5m2" => DataType::F8e5m2,
            _ => {
                return Err(format!(
                    "unknown data type '{s}': use one of {} or all",
                    DataType::ALL.map(|t| t.name()).join(" ")
                ))
            }
        };
        Ok(t)
    }
}

/// A reduction operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReduceOp {
    Sum,
    Prod,
    Max,
    Min,
    Avg,
    /// nccl-tests' `mulsum`: each rank's input times its scalar, summed (NCCL's
    /// ncclRedOpCreatePreMulSum, 2.11+). The scalar is nccl-tests': 1 on even ranks, 2 on odd ones.
    MulSum,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 6] = [
        ReduceOp::Sum,
        ReduceOp::Prod,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Avg,
        ReduceOp::MulSum,
    ];

    /// The scalar a rank's input is multiplied by under mulsum (nccl-tests' ncclVerifiablePremulScalar).
    pub fn premul_scalar(rank: usize) -> u64 {
        if rank % 2 == 0 {
            1
        } else {
            2
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Avg => "avg",
            ReduceOp::MulSum => "mulsum",
        }
    }
}

impl fmt::Display for ReduceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ReduceOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sum" => Ok(ReduceOp::Sum),
            "prod" => Ok(ReduceOp::Prod),
            "max" => Ok(ReduceOp::Max),
            "min" => Ok(ReduceOp::Min),
            "avg" => Ok(ReduceOp::Avg),
            "mulsum" | "premulsum" => Ok(ReduceOp::MulSum),
            _ => Err(format!(
                "unknown reduction '{s}': use one of sum prod max min avg mulsum, or all"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(t.name().parse::<DataType>(), Ok(t));
        }
        for op in ReduceOp::ALL {
            assert_eq!(op.name().parse::<ReduceOp>(), Ok(op));
        }
        assert_eq!("fp16".parse::<DataType>(), Ok(DataType::Half));
        assert!("float128"
            .parse::<DataType>()
            .unwrap_err()
            .contains("float128"));
        assert!("mean".parse::<ReduceOp>().is_err());
    }

    #[test]
    fn encodes_small_integers_exactly_in_every_type() {
        for t in DataType::ALL {
            let limit = t.exact_integer_limit().min(4096);
            let mut buf = vec![0u8; t.size()];
            for v in 0..=limit {
                t.encode(v, &mut buf);
                assert_eq!(t.decode_f64(&buf), v as f64, "{t} {v}");
            }
        }
    }

    #[test]
    fn f8_decoding_follows_the_ocp_definition() {
        // Largest finite E4M3 is 448 (0x7E), smallest E5M2 subnormal is 2^-16 (0x01).
        assert_eq!(DataType::F8e4m3.decode_f64(&[0x7E]), 448.0);
        assert_eq!(DataType::F8e5m2.decode_f64(&[0x01]), 2f64.powi(-16));
        assert_eq!(DataType::F8e4m3.decode_f64(&[0xB8]), -1.0);
    }

    #[test]
    fn float_encoding_rounds_to_nearest() {
        let mut b = [0u8; 1];
        DataType::F8e4m3.encode_f64(2.4, &mut b);
        assert_eq!(DataType::F8e4m3.decode_f64(&b), 2.5);
        let mut h = [0u8; 2];
        DataType::Half.encode_f64(1.0 / 3.0, &mut h);
        assert!((DataType::Half.decode_f64(&h) - 1.0 / 3.0).abs() < 1e-3);
    }

    #[test]
    fn f8_known_bit_patterns() {
        // From the OCP 8-bit floating point specification: 1.0 is 0x38 in E4M3 and 0x3C in E5M2.
        assert_eq!(f8_encode_small_integer(1, 3, 7), 0x38);
        assert_eq!(f8_encode_small_integer(1, 2, 15), 0x3C);
        assert_eq!(f8_encode_small_integer(2, 3, 7), 0x40);
        assert_eq!(f8_encode_small_integer(3, 2, 15), 0x42);
    }
}
