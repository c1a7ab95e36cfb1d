// Guards at the JS boundary. User input is checked in TypeScript, with full messages (src/native/addon.ts
// says where); what reaches the addon is trusted for meaning but not for memory. These guards only stop
// a wrong call from reading or writing outside what it was given, or from asking for absurd resources,
// and they all throw one terse form: "<function>: invalid <what>" (a TypeError).
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace img2prompt {

[[noreturn]] inline void ThrowInvalid(Napi::Env env, const char* function, const std::string& what) {
  throw Napi::TypeError::New(env, std::string(function) + ": invalid " + what);
}

#define JS_GUARD(cond, env, function, what)                                   \
  do {                                                                        \
    if (!(cond)) ::img2prompt::ThrowInvalid((env), (function), (what));       \
  } while (0)

// A JS number with no fraction, in [lo, hi].
inline int64_t GuardedInteger(Napi::Env env, const Napi::Value& v, const char* function, const std::string& what, int64_t lo,
                              int64_t hi) {
  const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  JS_GUARD(x >= static_cast<double>(lo) && x <= static_cast<double>(hi) && x == std::floor(x), env, function, what);
  return static_cast<int64_t>(x);
}

}  // namespace img2prompt
