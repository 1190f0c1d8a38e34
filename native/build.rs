//! Links the NIF library with MLX (found by the core crate's build script) and OpenBLAS,
//! and records where libmlx lives so the NIF finds it at load time.
fn main() {
    if let Ok(dir) = std::env::var("DEP_EMILY_MLX_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if std::env::var("DEP_EMILY_MLX_BLAS").as_deref() == Ok("openblas") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-l:libopenblas.so.0");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // Erlang's NIF symbols are resolved when the VM loads the library.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-link-arg=-undefined");
        println!("cargo:rustc-link-arg=dynamic_lookup");
    }
}
