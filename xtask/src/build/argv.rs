//! The make command lines of a build (golden-tested): ARCH, CROSS_COMPILE or LLVM,
//! ccache, -j, the image target. Pure.

use super::BuildOptions;
use crate::arch::Arch;
use std::path::Path;

/// The compiler the kernel is built with, by its own `--version`.
pub fn compiler_cmd(arch: &Arch, opts: &BuildOptions) -> String {
    if opts.llvm {
        "clang".to_string()
    } else {
        format!("{}gcc", arch.cross_compile)
    }
}

/// make's variables for this arch and toolchain (no target, no -j).
pub fn make_vars(arch: &Arch, build_dir: &Path, opts: &BuildOptions, ccache: bool) -> Vec<String> {
    let mut v = vec![format!("O={}", build_dir.display()), format!("ARCH={}", arch.make_arch)];
    if !arch.cross_compile.is_empty() {
        v.push(format!("CROSS_COMPILE={}", arch.cross_compile));
    }
    if opts.llvm {
        v.push("LLVM=1".to_string());
    }
    if ccache {
        v.push(format!("CC=ccache {}", compiler_cmd(arch, opts)));
    }
    v
}

/// The full make argv of the kernel build (golden-tested).
pub fn make_argv(arch: &Arch, build_dir: &Path, opts: &BuildOptions, ccache: bool) -> Vec<String> {
    let mut v = make_vars(arch, build_dir, opts, ccache);
    v.push(format!("-j{}", opts.jobs));
    v.push(arch.make_target.clone());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn make_argv_per_arch() {
        let table = crate::arch::table().unwrap();
        let dir = Path::new("/cache/build/ref-v7.2/x");
        let gcc = BuildOptions { llvm: false, jobs: 2, ccache: false, ..Default::default() };
        let llvm = BuildOptions { llvm: true, jobs: 8, ccache: true, ..Default::default() };
        let mut out = String::new();
        for a in table.rows() {
            let name = &a.name;
            out.push_str(&format!("{name}: make {}\n", make_argv(a, dir, &gcc, false).join(" ")));
            out.push_str(&format!("{name} llvm+ccache: make {}\n", make_argv(a, dir, &llvm, true).join(" ")));
        }
        expect![[r#"
            x86_64: make O=/cache/build/ref-v7.2/x ARCH=x86_64 -j2 bzImage
            x86_64 llvm+ccache: make O=/cache/build/ref-v7.2/x ARCH=x86_64 LLVM=1 CC=ccache clang -j8 bzImage
            arm64: make O=/cache/build/ref-v7.2/x ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j2 Image
            arm64 llvm+ccache: make O=/cache/build/ref-v7.2/x ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- LLVM=1 CC=ccache clang -j8 Image
            ppc64le: make O=/cache/build/ref-v7.2/x ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- -j2 vmlinux
            ppc64le llvm+ccache: make O=/cache/build/ref-v7.2/x ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu- LLVM=1 CC=ccache clang -j8 vmlinux
        "#]]
        .assert_eq(&out);
    }
}
