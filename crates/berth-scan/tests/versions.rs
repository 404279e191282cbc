use std::cmp::Ordering::{self, Equal, Greater, Less};

use berth_scan::version::{compare, Scheme};

fn check(scheme: Scheme, table: &[(&str, &str, Ordering)]) {
    for (a, b, want) in table {
        assert_eq!(compare(scheme, a, b), Some(*want), "{scheme:?}: {a} vs {b}");
        assert_eq!(compare(scheme, b, a), Some(want.reverse()), "{scheme:?}: {b} vs {a}");
    }
}

#[test]
fn dpkg() {
    check(
        Scheme::Dpkg,
        &[
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1:1.0", "2.0", Greater),
            ("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-2", Less),
            ("0:1.0", "1.0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("3.0.11-1~deb12u1", "3.0.11-1~deb12u2", Less),
            ("3.0.11-1~deb12u2", "3.0.11-1", Less),
            ("5.2.15-2", "5.2.15-2+b1", Less),
            ("2.36-9+deb12u3", "2.36-9+deb12u10", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0+", Less),
            ("1.10", "1.9", Greater),
            ("1.01", "1.1", Equal),
            ("7.88.1-10+deb12u4", "7.88.1-10+deb12u5", Less),
            ("1.0-1ubuntu1", "1.0-1", Greater),
            ("3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.15", Less),
        ],
    );
    assert_eq!(compare(Scheme::Dpkg, "not a version!", "1.0"), None);
}

#[test]
fn apk() {
    check(
        Scheme::Apk,
        &[
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-r1", Less),
            ("1.0-r1", "1.0-r10", Less),
            ("1.36.1-r7", "1.36.1-r15", Less),
            ("1.0_rc1", "1.0", Less),
            ("1.0_rc1", "1.0_rc2", Less),
            ("1.0_alpha", "1.0_beta", Less),
            ("1.0_beta", "1.0_pre", Less),
            ("1.0_pre", "1.0_rc", Less),
            ("1.0_p1", "1.0", Greater),
            ("1.0_p1", "1.0_p2", Less),
            ("1.0_cvs", "1.0_p", Less),
            ("1.0_git20230101", "1.0_p1", Less),
            ("1.2.4_git20230717-r4", "1.2.4_git20230717-r5", Less),
            ("1.2.4_git20230717-r4", "1.2.4", Greater),
            ("1.2.4", "1.2.5_rc1", Less),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0b", Less),
            ("1.0.0", "1.0", Greater),
            ("1.10", "1.9", Greater),
            ("1.02", "1.1", Less),
            ("3.1.4-r1", "3.1.4-r3", Less),
            ("2.39.3-r0", "2.39.3-r0", Equal),
            ("8.2.0015", "8.2.002", Less),
            ("1.01", "1.1", Less),
            ("0.9.10_p20230101", "0.9.10_rc1", Greater),
        ],
    );
    assert_eq!(compare(Scheme::Apk, "1.0-x", "1.0"), None, "invalid apk version");
}

#[test]
fn pep440() {
    check(
        Scheme::Pep440,
        &[
            ("1.0", "1.0.0", Equal),
            ("1.0a1", "1.0", Less),
            ("1.0a1", "1.0b1", Less),
            ("1.0b2", "1.0rc1", Less),
            ("1.0rc1", "1.0", Less),
            ("1.0", "1.0.post1", Less),
            ("1.0.dev1", "1.0a1", Less),
            ("1.0", "1.0+local", Less),
            ("1!0.1", "2.0", Greater),
            ("2.25.1", "2.31.0", Less),
            ("2.11.2", "2.10.1", Greater),
            ("1.0.0-rc.1", "1.0rc1", Equal),
        ],
    );
}

#[test]
fn maven() {
    check(
        Scheme::Maven,
        &[
            ("1", "1.0", Equal),
            ("1.0", "1.0.0", Equal),
            ("1.0-alpha1", "1.0-beta1", Less),
            ("1.0-beta1", "1.0-milestone1", Less),
            ("1.0-milestone1", "1.0-rc1", Less),
            ("1.0-rc1", "1.0-cr1", Equal),
            ("1.0-rc1", "1.0-SNAPSHOT", Less),
            ("1.0-SNAPSHOT", "1.0", Less),
            ("1.0", "1.0-ga", Equal),
            ("1.0", "1.0.Final", Equal),
            ("1.0.RELEASE", "1.0", Equal),
            ("1.0", "1.0-sp1", Less),
            ("1.0-sp1", "1.0-whatever", Less),
            ("1.0-whatever", "1.0.1", Less),
            ("1.0a1", "1.0-alpha-1", Equal),
            ("1.0", "1.0-1", Less),
            ("2.9.10", "2.9.10.1", Less),
            ("2.9.10.7", "2.9.11", Less),
            ("2.14.1", "2.15.0", Less),
            ("2.14.1-rc1", "2.14.1", Less),
            ("2.0-beta9", "2.0", Less),
            ("1.10", "1.9", Greater),
            ("1.0.0.0.0.1", "1", Greater),
            ("99999999999999999999", "99999999999999999998", Greater),
        ],
    );
}

#[test]
fn semver_and_go() {
    check(
        Scheme::Semver,
        &[("4.17.20", "4.17.21", Less), ("1.0.0-rc.1", "1.0.0", Less), ("1.0.0+build.1", "1.0.0", Equal), ("v1.2.3", "1.2.3", Equal)],
    );
    check(
        Scheme::Go,
        &[
            ("v0.7.0", "0.7.0", Equal),
            ("v0.7.0", "0.13.0", Less),
            ("v2.0.0+incompatible", "2.0.0", Equal),
            ("v0.0.0-20220314234659-1baeb1ce4c0b", "v0.0.0-20220315000000-aaaaaaaaaaaa", Less),
            ("v0.0.0-20220314234659-1baeb1ce4c0b", "v0.0.1", Less),
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4", Less),
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3", Greater),
            ("go1.20.1", "1.20.2", Less),
            ("go1.21rc2", "1.21.0", Less),
            ("go1.21rc2", "go1.21rc10", Less),
            ("go1.20", "1.20.0", Equal),
            ("0", "0.0.0", Equal),
        ],
    );
    assert_eq!(compare(Scheme::Go, "(devel)", "1.0.0"), None);
}
