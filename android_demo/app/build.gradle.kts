plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.quantsr.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.quantsr.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64") // the ABIs executorch-android ships
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug") // a demo: installable without a release key
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }

    kotlinOptions {
        jvmTarget = "11"
    }

    androidResources {
        noCompress += listOf("pte") // stored uncompressed in the APK; copied to filesDir and mmapped
    }

    testOptions {
        unitTests.all {
            // the JUnit tests read the shared vectors of the quantsr repository
            it.systemProperty("quantsr.vectors", rootProject.file("../tests/vectors").absolutePath)
        }
    }
}

dependencies {
    implementation("org.pytorch:executorch-android:1.5.1")
    testImplementation("junit:junit:4.13.2")
}
