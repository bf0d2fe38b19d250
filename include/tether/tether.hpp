#pragma once
/// \file Umbrella header: includes every public tether header that exists in this build.

#include "tether/base/buffer.hpp"
#include "tether/base/bytes.hpp"
#include "tether/base/endian.hpp"
#include "tether/base/error.hpp"
#include "tether/base/fd.hpp"
#include "tether/base/log.hpp"
#include "tether/base/result.hpp"
#include "tether/loop/event_loop.hpp"
#include "tether/loop/gather.hpp"
#include "tether/loop/io_watcher.hpp"
#include "tether/loop/sync.hpp"
#include "tether/loop/task.hpp"
#include "tether/loop/task_group.hpp"
#include "tether/loop/time.hpp"
#include "tether/loop/worker_pool.hpp"
