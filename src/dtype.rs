//! MLX dtypes and their codes on the C ABI (keep in sync with src/cpp/arrays.cc).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Dtype {
    Bool = 0,
    U8 = 1,
    U16 = 2,
    U32 = 3,
    U64 = 4,
    S8 = 5,
    S16 = 6,
    S32 = 7,
    S64 = 8,
    F16 = 9,
    BF16 = 10,
    F32 = 11,
    F64 = 12,
    C64 = 13,
}

impl Dtype {
    pub const ALL: [Dtype; 14] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::S8,
        Dtype::S16,
        Dtype::S32,
        Dtype::S64,
        Dtype::F16,
        Dtype::BF16,
        Dtype::F32,
        Dtype::F64,
        Dtype::C64,
    ];

    pub fn from_code(code: i32) -> Option<Dtype> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::S8 => 1,
            Dtype::U16 | Dtype::S16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::S32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::S64 | Dtype::F64 | Dtype::C64 => 8,
        }
    }

    /// Nx's type tuple: `{:u, 8}` is `("u", 8)`; bool is `("u", 8)` stored as bool in MLX,
    /// so it is named `("pred", 8)` here and mapped by the NIF layer.
    pub fn nx(self) -> (&'static str, u32) {
        match self {
            Dtype::Bool => ("pred", 8),
            Dtype::U8 => ("u", 8),
            Dtype::U16 => ("u", 16),
            Dtype::U32 => ("u", 32),
            Dtype::U64 => ("u", 64),
            Dtype::S8 => ("s", 8),
            Dtype::S16 => ("s", 16),
            Dtype::S32 => ("s", 32),
            Dtype::S64 => ("s", 64),
            Dtype::F16 => ("f", 16),
            Dtype::BF16 => ("bf", 16),
            Dtype::F32 => ("f", 32),
            Dtype::F64 => ("f", 64),
            Dtype::C64 => ("c", 64),
        }
    }

    pub fn from_nx(kind: &str, bits: u32) -> Option<Dtype> {
        Self::ALL.iter().copied().find(|d| d.nx() == (kind, bits))
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::U8 => "u8",
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
            Dtype::U64 => "u64",
            Dtype::S8 => "s8",
            Dtype::S16 => "s16",
            Dtype::S32 => "s32",
            Dtype::S64 => "s64",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::C64 => "c64",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
