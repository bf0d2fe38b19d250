#pragma once
/// \file Symbol visibility for tether's libraries. Everything is hidden by default
/// (-fvisibility=hidden); public classes and functions carry TETHER_API.

#if defined(__GNUC__)
#define TETHER_API __attribute__((visibility("default")))
#else
#define TETHER_API
#endif
