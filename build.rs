//! Compiles Emily's C++ shim (src/cpp) against MLX and links libmlx.
//!
//! MLX is found through `EMILY_MLX_DIR` (a directory with `include/` and `lib/libmlx.so`,
//! e.g. the unpacked `mlx-cpu` or `mlx-cuda-13` wheel, or a macOS build). `scripts/setup.sh`
//! installs the pinned `mlx-cpu` wheel and prints the variable.
//!
//! It also generates, from the op declarations in src/ops/*.ops (see build/ops.rs), the C
//! header the shim compiles against, this crate's op wrappers and the NIF crate's op NIFs.
use std::path::PathBuf;

#[path = "build/ops.rs"]
mod ops;

/// Writes the generated op code to OUT_DIR (include/emily_ops.h, ops.rs, nifs.rs); returns
/// the include directory. The NIF crate finds nifs.rs through `DEP_EMILY_MLX_OPS_DIR`.
fn generate_ops() -> PathBuf {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=build/ops.rs");
    println!("cargo:rerun-if-changed=src/ops");
    for entry in std::fs::read_dir("src/ops").expect("src/ops") {
        let path = entry.expect("src/ops entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("ops") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let fams = ops::read_all(std::path::Path::new("src/ops")).unwrap_or_else(|e| panic!("\n\nEmily: {e}\n"));
    for f in &fams {
        if !std::path::Path::new(&format!("src/cpp/{}.cc", f.name)).exists() {
            panic!("\n\nEmily: src/ops/{0}.ops has no src/cpp/{0}.cc\n", f.name);
        }
    }
    let include = out.join("include");
    std::fs::create_dir_all(&include).expect("OUT_DIR/include");
    let write = |path: PathBuf, text: String| {
        // unchanged files keep their time stamps (no needless C++ rebuilds)
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    };
    write(include.join("emily_ops.h"), ops::c_header(&fams));
    write(out.join("ops.rs"), ops::rust_ops(&fams));
    write(out.join("nifs.rs"), ops::rust_nifs(&fams));
    println!("cargo:ops_dir={}", out.display());
    include
}

fn main() {
    let generated = generate_ops();
    println!("cargo:rerun-if-env-changed=EMILY_MLX_DIR");
    let mlx = match std::env::var_os("EMILY_MLX_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            home.join(".cache/emily/mlx-cpu-0.32.4")
        }
    };
    let include = mlx.join("include");
    let lib = mlx.join("lib");
    if !include.join("mlx/mlx.h").exists() || !lib.join("libmlx.so").exists() && !lib.join("libmlx.dylib").exists() {
        panic!(
            "\n\nEmily: MLX not found at {} (EMILY_MLX_DIR).\n\
             Run `scripts/setup.sh` (installs the pinned mlx-cpu wheel) and export the\n\
             EMILY_MLX_DIR it prints, or point EMILY_MLX_DIR at another MLX build.\n",
            mlx.display()
        );
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .include(&include)
        .include(&generated)
        .include("src/cpp")
        .flag_if_supported("-Wno-unused-parameter")
        .opt_level(2)
        .debug(false);
    // The directory too: a new .cc file must rerun this script.
    println!("cargo:rerun-if-changed=src/cpp");
    for entry in std::fs::read_dir("src/cpp").expect("src/cpp") {
        let path = entry.expect("src/cpp entry").path();
        let ext = path.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("cc" | "hpp" | "h")) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        if ext == Some("cc") {
            build.file(&path);
        }
    }
    if let Some(sleef) = find_sleef() {
        build.define("EMILY_CPU_KERNELS", None);
        compile_kernels(&sleef);
    }
    build.compile("emily_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    // Exposed to dependents (the NIF crate) as DEP_EMILY_MLX_LIB_DIR.
    println!("cargo:lib_dir={}", lib.display());
    // Rust tests and benches of this crate run from target/: find libmlx there too.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // Test executables export src/direct.rs's MLX scheduler entry points, so that libmlx
    // binds to them as it does to the NIF library's (direct execution; see src/direct.rs).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--export-dynamic");
    }
    if is_cuda(&mlx) {
        // libmlx of the mlx-cuda wheels needs libcuda.so.1 (the driver) and NVIDIA's
        // cuBLAS/cuFFT/cuSOLVER/cuDNN/NCCL/NVRTC libraries. They are found at run time
        // through libmlx's own RPATH ($ORIGIN/../../nvidia/*/lib: the wheel's pip
        // dependencies beside it in site-packages) or LD_LIBRARY_PATH; a build machine
        // needs neither a GPU nor those libraries, so the linker must not insist on
        // resolving libmlx's own undefined symbols when it links an executable.
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
        println!("cargo:cuda=1");
    }
    link_openblas();
}

/// SLEEF (Debian: libsleef-dev), which Emily's CPU kernels (src/cpp/kernels) are built on:
/// the directory holding sleef.h, on x86_64 Linux only. `EMILY_SLEEF=0` builds without
/// the kernels (MLX's own CPU kernels then run everywhere); without SLEEF the build says so.
fn find_sleef() -> Option<std::path::PathBuf> {
    println!("cargo:rerun-if-env-changed=EMILY_SLEEF");
    println!("cargo:rerun-if-env-changed=EMILY_SLEEF_DIR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if matches!(std::env::var("EMILY_SLEEF").as_deref(), Ok("0" | "false")) || os != "linux" || arch != "x86_64" {
        return None;
    }
    let prefix = std::env::var("EMILY_SLEEF_DIR").ok();
    let candidates: Vec<std::path::PathBuf> = match &prefix {
        Some(p) => vec![std::path::Path::new(p).join("include")],
        None => ["/usr/include/x86_64-linux-gnu", "/usr/include", "/usr/local/include"]
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
    };
    let found = candidates.into_iter().find(|d| d.join("sleef.h").exists());
    if found.is_none() {
        println!(
            "cargo:warning=Emily: SLEEF not found (apt-get install libsleef-dev, or EMILY_SLEEF_DIR); \
             building without Emily's CPU kernels, so transcendental ops run MLX's slower ones"
        );
    }
    if let Some(p) = &prefix {
        println!("cargo:rustc-link-search=native={}/lib", p);
    }
    found
}

/// One static library per ISA from src/cpp/kernels, each compiled with its ISA's flags (the
/// rest of the shim stays baseline x86_64; cpu_kernels.cc picks one at run time).
fn compile_kernels(sleef_include: &std::path::Path) {
    for (isa, flags) in [("avx512", &["-mavx512f", "-mfma", "-mavx2"][..]), ("avx2", &["-mavx2", "-mfma"][..])] {
        let mut b = cc::Build::new();
        b.cpp(true).std("c++20").include("src/cpp").include(sleef_include).opt_level(3).debug(false);
        // GCC 12 warns about its own _mm512_undefined_ps inside _mm512_sqrt_ps.
        b.flag_if_supported("-Wno-maybe-uninitialized");
        for f in flags {
            b.flag(f);
        }
        b.file(format!("src/cpp/kernels/{isa}.cc"));
        b.compile(&format!("emily_kernels_{isa}"));
    }
    for entry in std::fs::read_dir("src/cpp/kernels").expect("src/cpp/kernels") {
        println!("cargo:rerun-if-changed={}", entry.expect("src/cpp/kernels entry").path().display());
    }
    println!("cargo:rustc-link-lib=dylib=sleef");
}

/// MLX built with its CUDA backend (the `mlx-cuda-*` wheels): their headers bring CCCL,
/// which MLX's run-time kernel compiler (NVRTC) includes. `EMILY_MLX_CUDA=1|0` overrides.
fn is_cuda(mlx: &std::path::Path) -> bool {
    println!("cargo:rerun-if-env-changed=EMILY_MLX_CUDA");
    match std::env::var("EMILY_MLX_CUDA").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => mlx.join("include/cccl").is_dir(),
    }
}

/// MLX's cblas/LAPACK calls must bind to an optimised BLAS: the wheel bundles reference BLAS
/// (~2 GFLOP/s). Making OpenBLAS a direct dependency of every binary we produce puts it ahead
/// of libmlx's own dependencies in the loader's search order.
fn link_openblas() {
    println!("cargo:rerun-if-env-changed=EMILY_BLAS");
    println!("cargo:rerun-if-env-changed=EMILY_BLAS_DIR");
    let blas = std::env::var("EMILY_BLAS").unwrap_or_else(|_| "openblas".into());
    if blas == "none" || cfg!(target_os = "macos") {
        return;
    }
    let dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"];
    let extra = std::env::var("EMILY_BLAS_DIR").ok().filter(|d| !d.is_empty());
    if let Some(d) = &extra {
        println!("cargo:rustc-link-search=native={d}");
    }
    let found =
        extra.iter().map(String::as_str).chain(dirs).any(|d| std::path::Path::new(d).join("libopenblas.so.0").exists());
    if !found {
        panic!(
            "\n\nEmily: OpenBLAS (libopenblas.so.0) not found. MLX's wheel bundles reference BLAS\n\
             (~2 GFLOP/s); Emily binds MLX's BLAS calls to OpenBLAS instead. Install it\n\
             (Debian: apt-get install libopenblas0-pthread; or run scripts/setup.sh), point\n\
             EMILY_BLAS_DIR at its directory, or build with EMILY_BLAS=none to keep MLX's own.\n"
        );
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-l:libopenblas.so.0");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    println!("cargo:blas=openblas");
}
