#pragma once
// Private: a proxy of one connection lent over another (RPyC over RPyC, RPyC issue #346). When
// a Netref from connection A is sent over connection B, B lends B's peer this object, under
// the id_pack A's peer gave it, and forwards every operation B's peer performs on it to A:
// attributes, calls, str/repr/hash, DIR, INSPECT, INSTANCECHECK, iteration (calls of
// __iter__/__next__). When B's peer releases it (DEL), the Netref goes, and A's peer gets its
// DEL. Sent back over A, it travels as the Netref itself. Access is checked where the object
// lives (A's peer's policy), not here.

#include <memory>
#include <string>
#include <vector>

#include "tether/rpc/any.hpp"
#include "tether/rpc/object.hpp"

namespace tether::rpc::detail {

class ForwardingObject final : public Object {
 public:
  explicit ForwardingObject(Netref target) : target_(std::move(target)) {}

  [[nodiscard]] std::string type_name() const override { return target_.type_name(); }
  [[nodiscard]] std::optional<brine::Value> fixed_id_pack() const override { return target_.id_pack(); }
  [[nodiscard]] const Netref* forwards_to() const noexcept override { return &target_; }
  [[nodiscard]] bool checks_own_access() const noexcept override { return true; }

  Task<Any> get_attr_async(CallContext& ctx, std::string name) override;
  Task<void> set_attr_async(CallContext& ctx, std::string name, Any value) override;
  Task<void> del_attr_async(CallContext& ctx, std::string name) override;
  Task<Any> call_attr(CallContext& ctx, std::string_view name, std::vector<Any> args, Kwargs kwargs) override;
  Task<Any> call(CallContext& ctx, std::vector<Any> args, Kwargs kwargs) override;
  Task<std::string> repr_async(CallContext& ctx) override;
  Task<std::string> str_async(CallContext& ctx) override;
  Task<std::int64_t> hash_async(CallContext& ctx) override;
  Task<std::vector<std::string>> dir_async(CallContext& ctx) override;
  Task<std::vector<std::string>> inspect_async(CallContext& ctx) override;
  Task<bool> instance_check_async(CallContext& ctx, brine::Value other_id_pack) override;

 private:
  Netref target_;
};

}  // namespace tether::rpc::detail
