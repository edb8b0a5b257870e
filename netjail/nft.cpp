// nftables through libnftnl and libmnl: messages are built by libnftnl, batched by libmnl.
#include "netjail/detail/nft.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_bridge.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "common/sys.hpp"

namespace netjail::detail {
namespace {

using common::fail;
using common::Result;

// Register numbers as the kernel knows them: 16-byte registers 1..4, 4-byte registers 8..23.
constexpr std::uint32_t kReg1 = NFT_REG_1, kReg2 = NFT_REG_2, kVerdict = NFT_REG_VERDICT;
constexpr std::uint32_t kReg32_01 = NFT_REG32_01, kReg32_06 = NFT_REG32_06;

// nftables' datatype numbers (nft's datatype.h), so `nft list` prints our sets readably.
enum : std::uint32_t {
  kTypeVerdict = 1,
  kTypeIpv4 = 7,
  kTypeIpv6 = 8,
  kTypeEther = 9,
  kTypeProto = 12,
  kTypeService = 13,
  kTypeMark = 19,
  kTypeIfname = 41,
};
constexpr std::uint32_t concat(std::uint32_t a, std::uint32_t b) { return a << 6 | b; }
enum : std::uint32_t { kHostOrder = 1, kNetOrder = 2 };

template <auto F>
struct Free {
  template <class T>
  void operator()(T* p) const noexcept {
    F(p);
  }
};
using TablePtr = std::unique_ptr<nftnl_table, Free<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Free<nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Free<nftnl_rule_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Free<nftnl_set_free>>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, Free<nftnl_udata_buf_free>>;

// A comment as nft stores it (user data), so `nft list ruleset` shows it.
UdataPtr comment_udata(std::uint8_t type, const std::string& text) {
  UdataPtr u{nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)};
  if (u)
    nftnl_udata_put_strz(u.get(), type, text.substr(0, NFTNL_UDATA_COMMENT_MAXLEN - 1).c_str());
  return u;
}

// ---- rules ---------------------------------------------------------------------------------

class Rule {
 public:
  Rule(int family, const char* table, const std::string& chain) : r_(nftnl_rule_alloc()) {
    nftnl_rule_set_u32(r_.get(), NFTNL_RULE_FAMILY, static_cast<std::uint32_t>(family));
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_TABLE, table);
    nftnl_rule_set_str(r_.get(), NFTNL_RULE_CHAIN, chain.c_str());
  }
  nftnl_rule* get() const { return r_.get(); }

  Rule& meta(std::uint32_t key, std::uint32_t dreg) {
    auto* e = add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
    return *this;
  }
  Rule& meta_set(std::uint32_t key, std::uint32_t sreg) {
    auto* e = add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
    return *this;
  }
  Rule& payload(std::uint32_t base, std::uint32_t offset, std::uint32_t len, std::uint32_t dreg) {
    auto* e = add("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
    return *this;
  }
  Rule& cmp(std::uint32_t op, const void* data, std::uint32_t len, std::uint32_t sreg = kReg1) {
    auto* e = add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    return *this;
  }
  Rule& cmp_u8(std::uint32_t op, std::uint8_t v) { return cmp(op, &v, 1); }
  Rule& cmp_be16(std::uint32_t op, std::uint16_t v) {
    std::uint16_t be = htons(v);
    return cmp(op, &be, 2);
  }
  Rule& cmp_u32(std::uint32_t op, std::uint32_t v) { return cmp(op, &v, 4); }
  Rule& mask(std::uint32_t len, const void* mask) {
    auto* e = add("bitwise");
    std::uint8_t zero[16] = {};
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, kReg1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, kReg1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
    return *this;
  }
  // A lookup in a set (membership, inverted with inv) or a map (dreg: where the value goes).
  Rule& lookup(const char* set, std::uint32_t sreg, int dreg = -1, bool inv = false) {
    auto* e = add("lookup");
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    if (dreg >= 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, static_cast<std::uint32_t>(dreg));
    if (inv) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    return *this;
  }
  Rule& ct(std::uint32_t key) {
    auto* e = add("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, kReg1);
    return *this;
  }
  // ct state/status has any of bits.
  Rule& ct_any(std::uint32_t key, std::uint32_t bits) {
    ct(key).mask(4, &bits);
    return cmp_u32(NFT_CMP_NEQ, 0);
  }
  Rule& counter() {
    add("counter");
    return *this;
  }
  Rule& verdict(int code, const std::string& chain = {}) {
    auto* e = add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, kVerdict);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(code));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
    return *this;
  }
  Rule& accept() { return verdict(NF_ACCEPT); }
  Rule& drop() { return verdict(NF_DROP); }
  Rule& limit_per_second(std::uint64_t rate, std::uint32_t burst) {
    auto* e = add("limit");
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, burst);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    return *this;
  }
  // `log level audit`: an AUDIT_NETFILTER_PKT record carrying the packet's mark (the jail).
  Rule& log_audit() {
    auto* e = add("log");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOG_LEVEL, NFT_LOGLEVEL_AUDIT);
    return *this;
  }
  Rule& fib_daddr_is_local() {
    auto* e = add("fib");
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, kReg1);
    return cmp_u32(NFT_CMP_EQ, RTN_LOCAL);
  }
  Rule& dnat(int family, std::uint32_t reg_addr, std::uint32_t reg_proto) {
    auto* e = add("nat");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, static_cast<std::uint32_t>(family));
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, reg_addr);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, reg_proto);
    return *this;
  }
  Rule& masquerade() {
    add("masq");
    return *this;
  }
  Rule& comment(const std::string& text) {
    auto u = comment_udata(NFTNL_UDATA_RULE_COMMENT, text);
    if (u)
      nftnl_rule_set_data(r_.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u.get()),
                          nftnl_udata_buf_len(u.get()));
    return *this;
  }

  // ---- matches built from the primitives above ----
  Rule& ifname(std::uint32_t key, const char* set, bool inv = false) {
    return meta(key, kReg1).lookup(set, kReg1, -1, inv);
  }
  // Compares a name prefix ("stk" matches "stk*"), as nft does for `iifname "stk*"`.
  Rule& ifname_prefix(std::uint32_t key, std::uint32_t op, const char* prefix) {
    return meta(key, kReg1).cmp(op, prefix, static_cast<std::uint32_t>(std::strlen(prefix)));
  }
  Rule& nfproto(int family) {
    return meta(NFT_META_NFPROTO, kReg1).cmp_u8(NFT_CMP_EQ, static_cast<std::uint8_t>(family));
  }
  Rule& l4proto(int proto) {
    return meta(NFT_META_L4PROTO, kReg1).cmp_u8(NFT_CMP_EQ, static_cast<std::uint8_t>(proto));
  }
  Rule& ether_type(std::uint32_t op, std::uint16_t type) {
    return payload(NFT_PAYLOAD_LL_HEADER, 12, 2, kReg1).cmp_be16(op, type);
  }
  // ip/ip6 saddr or daddr inside net (family check included).
  Rule& addr_in(const Addr& net, bool source) {
    nfproto(net.family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6);
    if (net.prefix == 0) return *this;
    std::uint32_t off = net.family == AF_INET ? (source ? 12 : 16) : (source ? 8 : 24);
    std::uint32_t len = static_cast<std::uint32_t>((net.prefix + 7) / 8);
    payload(NFT_PAYLOAD_NETWORK_HEADER, off, len, kReg1);
    std::uint8_t m[16] = {}, want[16] = {};
    for (int bit = 0; bit < net.prefix; ++bit)
      m[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    for (std::uint32_t i = 0; i < len; ++i) want[i] = net.b[i] & m[i];
    if (net.prefix % 8) mask(len, m);
    return cmp(NFT_CMP_EQ, want, len);
  }
  Rule& dport(std::uint16_t first, std::uint16_t last) {
    if (first == 0 && last == 65535) return *this;
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kReg1);
    if (first == last) return cmp_be16(NFT_CMP_EQ, first);
    return cmp_be16(NFT_CMP_GTE, first).cmp_be16(NFT_CMP_LTE, last);
  }
  Rule& icmp_type(int family, std::uint8_t type) {
    nfproto(family).l4proto(family == NFPROTO_IPV4 ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6});
    return payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kReg1).cmp_u8(NFT_CMP_EQ, type);
  }

 private:
  nftnl_expr* add(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(r_.get(), e);  // the rule owns it now
    return e;
  }
  RulePtr r_;
};

// ---- batches -------------------------------------------------------------------------------

// A comment from user data (a table's, a rule's, an element's: type says which).
std::string udata_comment(const void* data, std::uint32_t len, std::uint8_t type) {
  std::pair<std::uint8_t, std::string> want{type, {}};
  auto cb = [](const nftnl_udata* a, void* d) -> int {
    auto* w = static_cast<std::pair<std::uint8_t, std::string>*>(d);
    if (nftnl_udata_type(a) == w->first && nftnl_udata_get(a))
      w->second = static_cast<const char*>(nftnl_udata_get(a));
    return 0;
  };
  if (data) nftnl_udata_parse(data, len, cb, &want);
  return want.second;
}

// A stateful expression every element of a set gets a copy of: a counter, or the rate limit of
// a jail's denied-packet log (5/s, burst 10, as a jail chain's log rule has).
enum class PerElement { kNothing, kCounter, kLogLimit };

struct SetDef {
  const char* name;
  std::uint32_t key_type, key_len;
  std::uint32_t data_type = 0, data_len = 0;  // a map if data_type
  std::uint32_t key_order = kHostOrder, data_order = kHostOrder;
  PerElement per_element = PerElement::kNothing;
  const char* comment = nullptr;
};

nftnl_expr* log_limit_expr() {
  nftnl_expr* e = nftnl_expr_alloc("limit");
  nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, 5);
  nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, 10);
  nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
  return e;
}

class Batch {
 public:
  // size: enough for every message (a rule with its expressions is well under 1 KiB).
  explicit Batch(NftSocket& s, std::size_t size = 64 << 10) : s_(s), buf_(new char[size + kSlack]) {
    b_ = mnl_nlmsg_batch_start(buf_.get(), size);
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(b_)), s_.next_seq());
    next();
  }
  ~Batch() { mnl_nlmsg_batch_stop(b_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void table(int family, const char* name, const std::string& comment, std::uint16_t flags) {
    TablePtr t{nftnl_table_alloc()};
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name);
    auto u = comment_udata(NFTNL_UDATA_TABLE_COMMENT, comment);
    if (u)
      nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u.get()),
                           nftnl_udata_buf_len(u.get()));
    nftnl_table_nlmsg_build_payload(hdr(NFT_MSG_NEWTABLE, family, NLM_F_CREATE | flags, name),
                                    t.get());
    next();
  }
  void del_table(int family, const char* name) {
    TablePtr t{nftnl_table_alloc()};
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name);
    nftnl_table_nlmsg_build_payload(hdr(NFT_MSG_DELTABLE, family, 0, name), t.get());
    next();
  }
  void set(int family, const char* table, const SetDef& d, std::uint16_t flags = 0) {
    SetPtr s{nftnl_set_alloc()};
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table);
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, d.name);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, d.key_type);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, d.key_len);
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, ++set_id_);
    UdataPtr u{nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN)};
    nftnl_udata_put_u32(u.get(), NFTNL_UDATA_SET_KEYBYTEORDER, d.key_order);
    if (d.data_type) {
      nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_MAP);
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, d.data_type);
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, d.data_len);
      if (d.data_type != NFT_DATA_VERDICT)
        nftnl_udata_put_u32(u.get(), NFTNL_UDATA_SET_DATABYTEORDER, d.data_order);
    }
    if (d.comment)
      nftnl_udata_put_strz(
          u.get(), NFTNL_UDATA_SET_COMMENT,
          std::string(d.comment).substr(0, NFTNL_UDATA_COMMENT_MAXLEN - 1).c_str());
    if (d.per_element == PerElement::kCounter)
      nftnl_set_add_expr(s.get(), nftnl_expr_alloc("counter"));
    if (d.per_element == PerElement::kLogLimit) nftnl_set_add_expr(s.get(), log_limit_expr());
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(u.get()),
                       nftnl_udata_buf_len(u.get()));
    nftnl_set_nlmsg_build_payload(
        hdr(NFT_MSG_NEWSET, family, NLM_F_CREATE | flags, fmt::format("set {}", d.name)), s.get());
    next();
  }
  // A chain that exists already fails the batch, unless excl is false (then it is left as is).
  void chain(int family, const char* table, const std::string& name, const std::string& comment,
             int hook = -1, int prio = 0, const char* type = "filter", bool excl = true) {
    ChainPtr c{nftnl_chain_alloc()};
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    if (hook >= 0) {
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, static_cast<std::uint32_t>(hook));
      nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, prio);
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, type);
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    auto u = comment.empty() ? nullptr : comment_udata(NFTNL_UDATA_CHAIN_COMMENT, comment);
    if (u)
      nftnl_chain_set_data(c.get(), NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(u.get()),
                           nftnl_udata_buf_len(u.get()));
    nftnl_chain_nlmsg_build_payload(
        hdr(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE | (excl ? NLM_F_EXCL : 0), "chain " + name),
        c.get());
    next();
  }
  void flush_chain(int family, const char* table, const std::string& name) {
    RulePtr r{nftnl_rule_alloc()};
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
    nftnl_rule_nlmsg_build_payload(hdr(NFT_MSG_DELRULE, family, 0, "flush chain " + name), r.get());
    next();
  }
  void del_chain(int family, const char* table, const std::string& name) {
    flush_chain(family, table, name);  // a chain that still holds rules cannot be deleted
    ChainPtr c{nftnl_chain_alloc()};
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_nlmsg_build_payload(hdr(NFT_MSG_DELCHAIN, family, 0, "delete chain " + name),
                                    c.get());
    next();
    object_done();
  }
  void rule(const Rule& r) {
    nftnl_rule_nlmsg_build_payload(
        hdr(NFT_MSG_NEWRULE, static_cast<int>(nftnl_rule_get_u32(r.get(), NFTNL_RULE_FAMILY)),
            NLM_F_CREATE | NLM_F_APPEND,
            fmt::format("rule in {}", nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN))),
        r.get());
    next();
  }
  // One element: key, and either data bytes or a jump to a chain.
  void element(bool add, int family, const char* table, const char* set, const void* key,
               std::uint32_t key_len, const void* data, std::uint32_t data_len,
               const std::string& jump_to, const std::string& comment) {
    SetPtr s{nftnl_set_alloc()};
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table);
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set);
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, key_len);
    if (add && data) nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data, data_len);
    if (add && !jump_to.empty()) {
      nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, static_cast<std::uint32_t>(NFT_JUMP));
      nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, jump_to.c_str());
    }
    UdataPtr u;
    if (add && !comment.empty()) {
      u = comment_udata(NFTNL_UDATA_SET_ELEM_COMMENT, comment);
      if (u)
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(u.get()),
                           nftnl_udata_buf_len(u.get()));
    }
    nftnl_set_elem_add(s.get(), e);
    nftnl_set_elems_nlmsg_build_payload(
        hdr(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family,
            add ? NLM_F_CREATE | (excl_ ? NLM_F_EXCL : 0) : 0,
            add && !jump_to.empty() ? fmt::format("element of {} (jump {})", set, jump_to)
                                    : fmt::format("element of {}", set)),
        s.get());
    next();
    object_done();
  }
  // From now on each element or chain removal is committed in a batch of its own, and the first
  // error other than "not there" lands in *first_error: for what is left of a half-built jail.
  void one_by_one(std::optional<common::Error>* first_error) { each_ = first_error; }
  // Whether adding an element that is already there fails the batch (it does by default).
  void elements_exclusive(bool excl) { excl_ = excl; }
  std::size_t messages() const { return what_.size(); }
  // What each message so far does, in order ("rule in from_jails", "element of egress (jump
  // jail_<id>)").
  std::vector<std::string> described() const {
    std::vector<std::string> out;
    for (const auto& [seq, what] : what_) out.push_back(what);
    return out;
  }

  // Sends the batch; the kernel applies all of it or none. Returns the first error, naming the
  // message that failed.
  Result<void> commit() {
    if (overflow_) return fail(E2BIG, "nftables batch too large");
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(b_)), s_.next_seq());
    next();
    if (mnl_socket_sendto(s_.get(), mnl_nlmsg_batch_head(b_), mnl_nlmsg_batch_size(b_)) < 0)
      return fail(errno, "send nftables batch");
    // nfnetlink handles the batch inside sendmsg, so every answer is queued by now.
    std::unique_ptr<char[]> rx(new char[kRx]);
    std::optional<common::Error> first;
    std::size_t answers = 0;
    int fd = mnl_socket_get_fd(s_.get());
    while (answers < what_.size()) {
      ssize_t n = ::recv(fd, rx.get(), kRx, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      int len = static_cast<int>(n);
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(rx.get()); mnl_nlmsg_ok(nlh, len);
           nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type != NLMSG_ERROR) continue;
        ++answers;
        auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error == 0 || first) continue;
        auto it = what_.find(nlh->nlmsg_seq);
        first = common::Error{-err->error, it == what_.end() ? "nftables" : it->second};
      }
    }
    if (first) return std::unexpected(*first);
    return {};
  }

 private:
  static constexpr std::size_t kSlack = 64 << 10;  // room for the message that overflows
  static constexpr std::size_t kRx = 64 << 10;
  nlmsghdr* hdr(std::uint16_t type, int family, std::uint16_t flags, std::string what) {
    std::uint32_t seq = s_.next_seq();
    what_[seq] = std::move(what);
    return nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(b_)), type,
                                 static_cast<std::uint16_t>(family), flags | NLM_F_ACK, seq);
  }
  void next() {
    if (!mnl_nlmsg_batch_next(b_)) overflow_ = true;
  }
  void object_done() {
    if (each_ == nullptr) return;
    auto r = commit();
    if (!r && r.error().err != ENOENT && !*each_) *each_ = r.error();
    mnl_nlmsg_batch_reset(b_);
    what_.clear();
    overflow_ = false;
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(b_)), s_.next_seq());
    next();
  }
  NftSocket& s_;
  std::unique_ptr<char[]> buf_;  // not zeroed: libmnl writes every byte it sends
  mnl_nlmsg_batch* b_ = nullptr;
  std::map<std::uint32_t, std::string> what_;
  std::uint32_t set_id_ = 0;
  bool overflow_ = false;
  bool excl_ = true;
  std::optional<common::Error>* each_ = nullptr;
};

// ---- keys ----------------------------------------------------------------------------------

struct Key {
  std::uint8_t b[64] = {};
  std::uint32_t len = 0;
  Key& ifname(const std::string& name) {
    std::memcpy(b + len, name.data(), std::min<std::size_t>(name.size(), IFNAMSIZ - 1));
    len += IFNAMSIZ;
    return *this;
  }
  Key& bytes(const void* p, std::uint32_t n) {  // padded to 4 bytes, as registers are
    std::memcpy(b + len, p, n);
    len += (n + 3) / 4 * 4;
    return *this;
  }
  Key& mac(const Mac& m) { return bytes(m.b.data(), 6); }
  Key& addr(const Addr& a) { return bytes(a.b.data(), static_cast<std::uint32_t>(a.len())); }
  Key& u32(std::uint32_t v) { return bytes(&v, 4); }
  Key& proto(int p) {
    std::uint8_t v = static_cast<std::uint8_t>(p);
    return bytes(&v, 1);
  }
  Key& port(std::uint16_t p) {
    std::uint16_t be = htons(p);
    return bytes(&be, 2);
  }
  bool operator==(const Key& o) const { return len == o.len && std::memcmp(b, o.b, len) == 0; }
};

constexpr int kInet = NFPROTO_INET, kBridge = NFPROTO_BRIDGE;

// ---- flat jails ----------------------------------------------------------------------------
// A jail whose rules are all exact keys (flat_policy) has no chain and no jump element: each of
// its rules is an element of a hash set keyed by its mark, with a counter of its own and a
// comment naming the jail and the rule ("jail <id> <n>: <rule>", n its place among the rules of
// a jail chain), and the one shared chain flat_egress looks them up in a jail chain's order.
// The kernel validates every chain reachable from a base chain on each commit that adds a rule
// or a jump element, but not for set elements without a verdict, so adding or removing such a
// jail costs the same with any number of jails loaded; the lookups are hash lookups, so neither
// does a packet.
constexpr const char* kFlatChain = "flat_egress";
constexpr std::uint32_t kReg32_00 = NFT_REG32_00, kReg32_02 = NFT_REG32_02;
constexpr std::uint32_t kReg32_03 = NFT_REG32_03, kReg32_05 = NFT_REG32_05;

// The flat sets: [0, kFlatCounted) have a counter per element (a rule's), then the log limits.
constexpr const char* kFlatSets[] = {"flat_dns4",  "flat_dns6",   "flat_dns_drop", "flat_port4",
                                     "flat_port6", "flat_proto4", "flat_proto6",   "flat_host4",
                                     "flat_host6", "flat_denied", "flat_log"};
constexpr std::size_t kFlatCounted = 10;

bool single_port(const Allow& a) {
  return (a.proto == IPPROTO_TCP || a.proto == IPPROTO_UDP) && a.port_first == a.port_last;
}

// A rule's set and key, if it has one: one host, and one port or all (ports only count for TCP
// and UDP, as in a jail chain).
std::optional<std::pair<const char*, Key>> flat_key(const Allow& a, std::uint32_t mark, bool dns) {
  if (a.net.prefix != a.net.max_prefix()) return std::nullopt;
  bool v4 = a.net.family == AF_INET;
  Key k = Key().u32(mark).addr(a.net);
  if (dns) {  // before the DNS drop: only a resolver's port fits there
    if (!single_port(a)) return std::nullopt;
    return std::pair{v4 ? "flat_dns4" : "flat_dns6", k.proto(a.proto).port(a.port_first)};
  }
  if (single_port(a))
    return std::pair{v4 ? "flat_port4" : "flat_port6", k.proto(a.proto).port(a.port_first)};
  bool ports = a.proto == IPPROTO_TCP || a.proto == IPPROTO_UDP;
  if (ports && (a.port_first != 0 || a.port_last != 65535)) return std::nullopt;  // a range
  if (a.proto) return std::pair{v4 ? "flat_proto4" : "flat_proto6", k.proto(a.proto)};
  return std::pair{v4 ? "flat_host4" : "flat_host6", k};
}

struct FlatElement {
  std::string set;
  Key key;
  std::string comment;
};

// The elements of a flat jail, from its rules.
std::vector<FlatElement> flat_elements(const JailRules& j) {
  std::vector<FlatElement> out;
  const Key mark = Key().u32(j.mark);
  std::size_t n = 0;
  auto tag = [&](const std::string& rule) {
    return fmt::format("jail {} {}: {}", j.id, n++, rule);
  };
  auto rule = [&](std::size_t i) {
    auto [set, key] = *flat_key(j.allow[i], j.mark, i < j.dns_rules);
    std::string comment = tag(j.allow[i].why);
    // The same key twice (a rule repeated): the first has the element, as in a chain the
    // first of two equal rules counts every packet.
    if (std::none_of(out.begin(), out.end(),
                     [&](const FlatElement& e) { return e.set == set && e.key == key; }))
      out.push_back({set, key, comment});
  };
  for (std::size_t i = 0; i < j.dns_rules && i < j.allow.size(); ++i) rule(i);
  out.push_back({"flat_dns_drop", mark, tag("DNS only to the configured resolvers")});
  for (std::size_t i = j.dns_rules; i < j.allow.size(); ++i) rule(i);
  if (j.log_denied)
    out.push_back({"flat_log", mark, fmt::format("jail {}: log denied (rate-limited)", j.id)});
  out.push_back({"flat_denied", mark, tag("denied")});
  return out;
}

// True if comment is one of jail id's ("jail <id>", "jail <id> 3: ...", "jail <id>: ...").
bool names_jail(const std::string& comment, const std::string& id) {
  std::string tag = "jail " + id;
  return comment.starts_with(tag) &&
         (comment.size() == tag.size() || comment[tag.size()] == ' ' || comment[tag.size()] == ':');
}

// What layout 4 added to the inet table: the marks of running jails, and the flat sets.
void layout4_sets(Batch& b) {
  const char* t = kInetTable;
  using enum PerElement;
  const std::uint32_t mark4 = concat(kTypeMark, kTypeIpv4), mark6 = concat(kTypeMark, kTypeIpv6);
  const std::uint32_t port4 = concat(concat(mark4, kTypeProto), kTypeService);
  const std::uint32_t port6 = concat(concat(mark6, kTypeProto), kTypeService);
  b.set(kInet, t,
        {"marks", kTypeMark, 4, 0, 0, kHostOrder, kHostOrder, kNothing,
         "every jail's mark: one a crash left refuses a new jail that leased it, until gc"});
  auto set = [&](const char* name, std::uint32_t type, std::uint32_t len, PerElement per,
                 const char* comment) {
    std::uint32_t order = type == kTypeMark ? kHostOrder : kNetOrder;
    b.set(kInet, t, {name, type, len, 0, 0, order, kHostOrder, per, comment});
  };
  const char* kPort = "flat jails: host . protocol . port allowed, an element per rule";
  const char* kProto = "flat jails: host . protocol allowed (any port), an element per rule";
  const char* kHost = "flat jails: host allowed (any protocol), an element per rule";
  set("flat_dns4", port4, 16, kCounter, "flat jails: DNS to their resolvers");
  set("flat_dns6", port6, 28, kCounter, "flat jails: DNS to their resolvers");
  set("flat_dns_drop", kTypeMark, 4, kCounter,
      "flat jails: DNS to anything but their resolvers is dropped");
  set("flat_port4", port4, 16, kCounter, kPort);
  set("flat_port6", port6, 28, kCounter, kPort);
  set("flat_proto4", concat(mark4, kTypeProto), 12, kCounter, kProto);
  set("flat_proto6", concat(mark6, kTypeProto), 24, kCounter, kProto);
  set("flat_host4", mark4, 8, kCounter, kHost);
  set("flat_host6", mark6, 20, kCounter, kHost);
  set("flat_denied", kTypeMark, 4, kCounter, "flat jails: everything else is dropped");
  set("flat_log", kTypeMark, 4, kLogLimit, "flat jails: denied packets logged, 5/s per jail");
}

// The shared chain that evaluates every flat jail's policy, in a jail chain's order: its
// resolvers, the DNS drop, its hosts (port, protocol, any), the log and the final drop. A mark
// of no flat jail matches none and returns. The counted lookup is the last match of each rule:
// an element counts when its key matches, whatever follows.
void flat_rules(Batch& b) {
  const char* t = kInetTable;
  const std::string c = kFlatChain;
  // mark . daddr [. l4proto [. dport]] from register 32_00 on.
  auto key = [&](bool v4, int parts) {
    Rule r(kInet, t, c);
    r.nfproto(v4 ? NFPROTO_IPV4 : NFPROTO_IPV6).meta(NFT_META_MARK, kReg32_00);
    r.payload(NFT_PAYLOAD_NETWORK_HEADER, v4 ? 16 : 24, v4 ? 4 : 16, kReg32_01);
    if (parts >= 3) r.meta(NFT_META_L4PROTO, v4 ? kReg32_02 : kReg32_05);
    if (parts >= 4) r.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, v4 ? kReg32_03 : kReg32_06);
    return r;
  };
  for (bool v4 : {true, false})
    b.rule(key(v4, 4)
               .lookup(v4 ? "flat_dns4" : "flat_dns6", kReg32_00)
               .accept()
               .comment("a resolver of the jail's"));
  b.rule(Rule(kInet, t, c)
             .meta(NFT_META_L4PROTO, kReg1)
             .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kReg32_01)
             .lookup("dns_ports", kReg1)
             .meta(NFT_META_MARK, kReg1)
             .lookup("flat_dns_drop", kReg1)
             .drop()
             .comment("DNS only to the configured resolvers"));
  for (bool v4 : {true, false}) {
    b.rule(key(v4, 4)
               .lookup(v4 ? "flat_port4" : "flat_port6", kReg32_00)
               .accept()
               .comment("a host . protocol . port the jail may reach"));
    b.rule(key(v4, 3)
               .lookup(v4 ? "flat_proto4" : "flat_proto6", kReg32_00)
               .accept()
               .comment("a host . protocol the jail may reach"));
    b.rule(key(v4, 2)
               .lookup(v4 ? "flat_host4" : "flat_host6", kReg32_00)
               .accept()
               .comment("a host the jail may reach"));
  }
  b.rule(Rule(kInet, t, c)
             .meta(NFT_META_MARK, kReg1)
             .lookup("flat_log", kReg1)
             .log_audit()
             .comment("log denied (the element's limit: per jail)"));
  b.rule(Rule(kInet, t, c)
             .meta(NFT_META_MARK, kReg1)
             .lookup("flat_denied", kReg1)
             .drop()
             .comment("denied"));
}

// The end of from_jails and of input: the jail's own egress policy, its chain through the
// egress map or, for a flat jail, flat_egress; what neither decides is counted and dropped.
void egress_policy_rules(Batch& b, const std::string& chain, const char* drop_comment) {
  const char* t = kInetTable;
  b.rule(Rule(kInet, t, chain)
             .meta(NFT_META_MARK, kReg1)
             .lookup("egress", kReg1, kVerdict)
             .comment("the jail's egress policy"));
  b.rule(Rule(kInet, t, chain)
             .verdict(NFT_JUMP, kFlatChain)
             .comment("the egress policy of a jail without a chain"));
  b.rule(Rule(kInet, t, chain).counter().drop().comment(drop_comment));
}

// What a jail sends through the host. Its own function: tables of the first layout get these
// rules replaced in place (upgrade_layout).
void from_jails_rules(Batch& b) {
  const char* t = kInetTable;
  const std::string fj = "from_jails";
  b.rule(
      Rule(kInet, t, fj)
          .ct_any(NFT_CT_STATE, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED))
          .accept());
  b.rule(Rule(kInet, t, fj)
             .ct_any(NFT_CT_STATE, NF_CT_STATE_INVALID_BIT)
             .counter()
             .drop()
             .comment("invalid"));
  // To another jail: the receiver's policy first (its peer chain returns here if the sender is
  // one of its peers, and drops otherwise), then the sender's own, below. The peer chains hold
  // no jump: every commit that adds a rule re-validates every chain reachable from a base chain,
  // and a jump to @egress in each of N peer chains made that N x N map elements per jail added.
  // A jail whose peers are all single hosts has no peer chain: receiver . sender pairs in
  // peer_hosts4/6 (a hash set: adding and removing cost the same at any size).
  b.rule(Rule(kInet, t, fj)
             .ifname(NFT_META_OIFNAME, "bridges")
             .nfproto(NFPROTO_IPV4)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, kReg1)
             .lookup("peer4", kReg1, -1, true)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, kReg32_01)
             .lookup("peer_hosts4", kReg1, -1, true)
             .counter()
             .drop()
             .comment("jail to jail"));
  b.rule(Rule(kInet, t, fj)
             .ifname(NFT_META_OIFNAME, "bridges")
             .nfproto(NFPROTO_IPV6)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, kReg1)
             .lookup("peer6", kReg1, -1, true)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16, kReg2)
             .lookup("peer_hosts6", kReg1, -1, true)
             .counter()
             .drop()
             .comment("jail to jail"));
  b.rule(Rule(kInet, t, fj)
             .ifname(NFT_META_OIFNAME, "bridges")
             .nfproto(NFPROTO_IPV4)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, kReg1)
             .lookup("peer4", kReg1, kVerdict)
             .comment("to another jail: its policy first"));
  b.rule(Rule(kInet, t, fj)
             .ifname(NFT_META_OIFNAME, "bridges")
             .nfproto(NFPROTO_IPV6)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, kReg1)
             .lookup("peer6", kReg1, kVerdict)
             .comment("to another jail: its policy first"));
  egress_policy_rules(b, fj, "unregistered port");
}

// Jails reaching the host itself (any of its addresses): only what their policy allows. Its own
// function, as from_jails: tables of layout 3 and older get it in place.
void input_rules(Batch& b) {
  const char* t = kInetTable;
  const std::string in = "input";
  b.rule(Rule(kInet, t, in).ifname(NFT_META_IIFNAME, "bridges", true).accept());
  b.rule(
      Rule(kInet, t, in)
          .ct_any(NFT_CT_STATE, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED))
          .accept());
  b.rule(Rule(kInet, t, in).ct_any(NFT_CT_STATE, NF_CT_STATE_INVALID_BIT).counter().drop());
  b.rule(
      Rule(kInet, t, in).icmp_type(NFPROTO_IPV6, 135).accept().comment("neighbour solicitation"));
  b.rule(
      Rule(kInet, t, in).icmp_type(NFPROTO_IPV6, 136).accept().comment("neighbour advertisement"));
  b.rule(Rule(kInet, t, in)
             .icmp_type(NFPROTO_IPV4, 8)
             .limit_per_second(10, 5)
             .accept()
             .comment("ping the gateway"));
  b.rule(Rule(kInet, t, in)
             .icmp_type(NFPROTO_IPV6, 128)
             .limit_per_second(10, 5)
             .accept()
             .comment("ping the gateway"));
  egress_policy_rules(b, in, "jail to host");
}

// The layout's version is in the table's comment: tables made by a stockade whose chains fit
// together differently are refused rather than mixed with this one's.
constexpr const char* kInetComment =
    "stockade: per-jail egress policy, NAT and published ports (layout 4)";
// Tables of an older layout, upgraded in place, have this (empty) set; their comment is older
// (the kernel keeps a table's first comment).
constexpr const char* kLayoutSet = "layout_4";

// What layout 3 added to the inet table: the DNS ports a jail chain drops in one rule, and the
// peers of jails whose peers are single hosts (receiver address . sender address).
void layout3_sets(Batch& b) {
  const char* t = kInetTable;
  b.set(kInet, t, {"peer_hosts4", concat(kTypeIpv4, kTypeIpv4), 8, 0, 0, kNetOrder});
  b.set(kInet, t, {"peer_hosts6", concat(kTypeIpv6, kTypeIpv6), 32, 0, 0, kNetOrder});
  b.set(kInet, t, {"dns_ports", concat(kTypeProto, kTypeService), 8, 0, 0, kNetOrder});
  for (int proto : {IPPROTO_UDP, IPPROTO_TCP})
    for (std::uint16_t port : {53, 853}) {
      Key k = Key().proto(proto).port(port);
      b.element(true, kInet, t, "dns_ports", k.b, k.len, nullptr, 0, {},
                port == 53 ? "DNS" : "DNS over TLS");
    }
}

void inet_base(Batch& b) {
  const char* t = kInetTable;
  b.table(kInet, t, kInetComment, NLM_F_EXCL);
  b.set(kInet, t, {"bridges", kTypeIfname, IFNAMSIZ});
  b.set(kInet, t, {"egress", kTypeMark, 4, NFT_DATA_VERDICT, 0});
  b.set(kInet, t, {"peer4", kTypeIpv4, 4, NFT_DATA_VERDICT, 0, kNetOrder});
  b.set(kInet, t, {"peer6", kTypeIpv6, 16, NFT_DATA_VERDICT, 0, kNetOrder});
  layout3_sets(b);
  layout4_sets(b);
  b.set(kInet, t,
        {"publish4", concat(kTypeProto, kTypeService), 8, concat(kTypeIpv4, kTypeService), 8,
         kNetOrder, kNetOrder});
  b.set(kInet, t,
        {"publish6", concat(kTypeProto, kTypeService), 8, concat(kTypeIpv6, kTypeService), 20,
         kNetOrder, kNetOrder});

  b.chain(kInet, t, kFlatChain, "the egress policy of every jail without a chain of its own");
  flat_rules(b);
  b.chain(kInet, t, "from_jails", "traffic a jail sends through the host");
  b.chain(kInet, t, "to_jails", "traffic towards a jail from elsewhere");
  b.chain(kInet, t, "forward", "", NF_INET_FORWARD, 0);
  b.rule(Rule(kInet, t, "forward")
             .ifname(NFT_META_IIFNAME, "bridges")
             .verdict(NFT_JUMP, "from_jails"));
  b.rule(
      Rule(kInet, t, "forward").ifname(NFT_META_OIFNAME, "bridges").verdict(NFT_JUMP, "to_jails"));

  from_jails_rules(b);

  const std::string tj = "to_jails";
  b.rule(
      Rule(kInet, t, tj)
          .ct_any(NFT_CT_STATE, NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED))
          .accept());
  b.rule(Rule(kInet, t, tj).ct_any(NFT_CT_STATUS, IPS_DST_NAT).accept().comment("published port"));
  b.rule(Rule(kInet, t, tj).counter().drop().comment("unsolicited inbound"));

  b.chain(kInet, t, "input", "", NF_INET_LOCAL_IN, 0);
  input_rules(b);

  // Published ports: DNAT on any local address, from outside and from the host itself.
  b.chain(kInet, t, "prerouting_nat", "", NF_INET_PRE_ROUTING, -100, "nat");
  b.chain(kInet, t, "output_nat", "", NF_INET_LOCAL_OUT, -100, "nat");
  // Not for jails: a jail reaches another jail only directly, when both policies allow it.
  // (Through the host's address it could not anyway: with br_netfilter on, a DNAT back into
  // the bridge is delivered at layer 2, where jail ports are isolated from each other.)
  // By interface, not by 'meta mark @egress': a lookup in a verdict map, even one that only asks
  // whether the key is there, makes every commit validate every jail chain from this hook too.
  // A jail's packets come from its port (with br_netfilter, in the bridge's prerouting) or from
  // the bridge (routed); a port that is no registered jail's was dropped in the bridge table.
  b.rule(Rule(kInet, t, "prerouting_nat")
             .ifname_prefix(NFT_META_IIFNAME, NFT_CMP_EQ, kPortPrefix)
             .verdict(NFT_RETURN)
             .comment("jails connect to jails directly"));
  b.rule(Rule(kInet, t, "prerouting_nat")
             .ifname(NFT_META_IIFNAME, "bridges")
             .verdict(NFT_RETURN)
             .comment("jails connect to jails directly"));
  for (const char* c : {"prerouting_nat", "output_nat"}) {
    Rule v4(kInet, t, c), v6(kInet, t, c);
    if (std::strcmp(c, "output_nat") == 0) {
      // Loopback sources cannot be routed to a jail: 127/8 and ::1 are left alone.
      std::uint8_t lo4 = 127, lo6[16] = {};
      lo6[15] = 1;
      v4.nfproto(NFPROTO_IPV4)
          .payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 1, kReg1)
          .cmp(NFT_CMP_NEQ, &lo4, 1);
      v6.nfproto(NFPROTO_IPV6)
          .payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, kReg1)
          .cmp(NFT_CMP_NEQ, lo6, 16);
    }
    for (auto* r : {&v4, &v6}) {
      bool six = r == &v6;
      r->fib_daddr_is_local()
          .meta(NFT_META_L4PROTO, kReg1)
          .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kReg32_01)
          .lookup(six ? "publish6" : "publish4", kReg1, kReg1)
          .dnat(six ? NFPROTO_IPV6 : NFPROTO_IPV4, kReg1, six ? kReg2 : kReg32_01)
          .comment("published ports");
      b.rule(*r);
    }
  }
  // NAT out.
  b.chain(kInet, t, "postrouting_nat", "", NF_INET_POST_ROUTING, 100, "nat");
  b.rule(Rule(kInet, t, "postrouting_nat")
             .ifname(NFT_META_IIFNAME, "bridges")
             .ifname(NFT_META_OIFNAME, "bridges", true)
             .masquerade()
             .comment("jails out"));
}

void bridge_base(Batch& b) {
  const char* t = kBridgeTable;
  b.table(kBridge, t, "stockade: jail identity and anti-spoofing on bridge ports", NLM_F_EXCL);
  b.set(kBridge, t, {"port_mark", kTypeIfname, IFNAMSIZ, kTypeMark, 4});
  b.set(kBridge, t, {"pin_mac", concat(kTypeIfname, kTypeEther), IFNAMSIZ + 8});
  b.set(kBridge, t, {"pin4", concat(concat(kTypeIfname, kTypeEther), kTypeIpv4), IFNAMSIZ + 12});
  b.set(kBridge, t, {"pin6", concat(kTypeIfname, kTypeIpv6), IFNAMSIZ + 16});

  const std::string p = "prerouting";
  b.chain(kBridge, t, p, "", NF_BR_PRE_ROUTING, -200);
  auto r = [&] { return Rule(kBridge, t, p); };
  b.rule(r().ifname_prefix(NFT_META_IIFNAME, NFT_CMP_NEQ, kPortPrefix)
             .accept()
             .comment("not a jail port"));
  b.rule(r().meta(NFT_META_IIFNAME, kReg1)
             .payload(NFT_PAYLOAD_LL_HEADER, 6, 6, kReg2)
             .lookup("pin_mac", kReg1, -1, true)
             .counter()
             .drop()
             .comment("MAC spoofed, or port not registered"));
  b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_ARP)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 0, 2, kReg1)
             .cmp_be16(NFT_CMP_NEQ, 1)
             .counter()
             .drop()
             .comment("ARP: not Ethernet"));
  b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_ARP)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 2, 2, kReg1)
             .cmp_be16(NFT_CMP_NEQ, ETH_P_IP)
             .counter()
             .drop()
             .comment("ARP: not IPv4"));
  b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_ARP)
             .meta(NFT_META_IIFNAME, kReg1)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 6, kReg2)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, kReg32_06)
             .lookup("pin4", kReg1, -1, true)
             .counter()
             .drop()
             .comment("ARP sender spoofed"));
  b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_IP)
             .meta(NFT_META_IIFNAME, kReg1)
             .payload(NFT_PAYLOAD_LL_HEADER, 6, 6, kReg2)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, kReg32_06)
             .lookup("pin4", kReg1, -1, true)
             .counter()
             .drop()
             .comment("IPv4 source spoofed"));
  {
    std::uint8_t any[16] = {};
    b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_IPV6)
               .payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16, kReg1)
               .cmp(NFT_CMP_EQ, any, 16)
               .l4proto(IPPROTO_ICMPV6)
               .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kReg1)
               .cmp_u8(NFT_CMP_EQ, 135)
               .accept()
               .comment("duplicate address detection"));
  }
  b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_IPV6)
             .meta(NFT_META_IIFNAME, kReg1)
             .payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16, kReg2)
             .lookup("pin6", kReg1, -1, true)
             .counter()
             .drop()
             .comment("IPv6 source spoofed"));
  for (std::uint8_t type : {134, 137})
    b.rule(r().ether_type(NFT_CMP_EQ, ETH_P_IPV6)
               .l4proto(IPPROTO_ICMPV6)
               .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, kReg1)
               .cmp_u8(NFT_CMP_EQ, type)
               .counter()
               .drop()
               .comment("a jail is not a router"));
  b.rule(r().ether_type(NFT_CMP_NEQ, ETH_P_IP)
             .cmp_be16(NFT_CMP_NEQ, ETH_P_IPV6)
             .cmp_be16(NFT_CMP_NEQ, ETH_P_ARP)
             .counter()
             .drop()
             .comment("other ethertypes, VLAN tags"));
  b.rule(r().meta(NFT_META_IIFNAME, kReg1)
             .lookup("port_mark", kReg1, kReg1)
             .meta_set(NFT_META_MARK, kReg1)
             .comment("the jail's mark"));

  b.chain(kBridge, t, "forward", "", NF_BR_FORWARD, -200);
  b.rule(Rule(kBridge, t, "forward")
             .ifname_prefix(NFT_META_IIFNAME, NFT_CMP_EQ, kPortPrefix)
             .ifname_prefix(NFT_META_OIFNAME, NFT_CMP_EQ, kPortPrefix)
             .counter()
             .drop()
             .comment("jail to jail at layer 2"));
}

// The per-jail objects, added (add) or removed; flat: a flat jail's elements (flat_elements, or
// for a jail rebuilt from its lease, the ones found by their comments).
void jail_objects(Batch& b, const JailRules& j, bool add, const std::vector<FlatElement>& flat) {
  const char* t = kInetTable;
  const std::string egress = egress_chain(j.id), peer = peer_chain(j.id);
  const std::string tag = "jail " + j.id;
  Key mark = Key().u32(j.mark);
  if (j.mark_element) b.element(add, kInet, t, "marks", mark.b, mark.len, nullptr, 0, {}, tag);
  if (add && !j.flat) {
    b.chain(kInet, t, egress, "stockade jail " + j.id + ": egress policy");
    auto allow = [&](const Allow& a) {
      Rule r(kInet, t, egress);
      r.addr_in(a.net, false);
      if (a.proto) r.l4proto(a.proto);
      if (a.proto == IPPROTO_TCP || a.proto == IPPROTO_UDP) r.dport(a.port_first, a.port_last);
      b.rule(r.counter().accept().comment(a.why));
    };
    for (std::size_t i = 0; i < j.dns_rules && i < j.allow.size(); ++i) allow(j.allow[i]);
    // DNS to anything but the resolvers above is refused even if a wider rule below allows it.
    // One rule for UDP and TCP, 53 and 853: every rule of every jail chain is validated again on
    // each commit that adds one, so each rule here makes every later jail's add dearer.
    b.rule(Rule(kInet, t, egress)
               .meta(NFT_META_L4PROTO, kReg1)
               .payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, kReg32_01)
               .lookup("dns_ports", kReg1)
               .counter()
               .drop()
               .comment("DNS only to the configured resolvers"));
    for (std::size_t i = j.dns_rules; i < j.allow.size(); ++i) allow(j.allow[i]);
    if (j.log_denied)
      b.rule(Rule(kInet, t, egress)
                 .limit_per_second(5, 10)
                 .log_audit()
                 .comment("log denied (rate-limited)"));
    b.rule(Rule(kInet, t, egress).counter().drop().comment("denied"));
  }
  // Peers that are all single hosts need no chain (each chain is validated again on every
  // commit): pairs in a hash set. A lease of an older stockade does not say: it has a chain.
  bool host_peers = j.peers_known && std::all_of(j.peers.begin(), j.peers.end(), [](const Addr& a) {
                      return a.prefix == a.max_prefix();
                    });
  if (add && !host_peers) {
    b.chain(kInet, t, peer, "stockade jail " + j.id + ": which jails may connect to it");
    for (const auto& net : j.peers)
      b.rule(Rule(kInet, t, peer)
                 .addr_in(net, true)
                 .verdict(NFT_RETURN)
                 .comment("a peer: the sender's policy decides"));
    b.rule(Rule(kInet, t, peer).counter().drop().comment("not a peer"));
  }
  if (!j.flat) b.element(add, kInet, t, "egress", mark.b, mark.len, nullptr, 0, egress, tag);
  for (const auto& e : flat)
    b.element(add, kInet, t, e.set.c_str(), e.key.b, e.key.len, nullptr, 0, {}, e.comment);
  if (host_peers) {
    for (std::size_t i = 0; i < j.peers.size(); ++i) {
      const Addr& p = j.peers[i];
      if (std::find(j.peers.begin(), j.peers.begin() + static_cast<long>(i), p) !=
          j.peers.begin() + static_cast<long>(i))
        continue;  // the same host twice: one element
      Key k = Key().addr(p.family == AF_INET ? j.addr4 : j.addr6).addr(p);
      b.element(add, kInet, t, p.family == AF_INET ? "peer_hosts4" : "peer_hosts6", k.b, k.len,
                nullptr, 0, {}, tag);
    }
  } else {
    Key a4 = Key().addr(j.addr4), a6 = Key().addr(j.addr6);
    b.element(add, kInet, t, "peer4", a4.b, a4.len, nullptr, 0, peer, tag);
    b.element(add, kInet, t, "peer6", a6.b, a6.len, nullptr, 0, peer, tag);
  }
  for (const auto& p : j.publish) {
    Key k = Key().proto(p.proto).port(p.host_port);
    Key d4 = Key().addr(j.addr4).port(p.jail_port), d6 = Key().addr(j.addr6).port(p.jail_port);
    b.element(add, kInet, t, "publish4", k.b, k.len, d4.b, d4.len, {}, tag);
    b.element(add, kInet, t, "publish6", k.b, k.len, d6.b, d6.len, {}, tag);
  }
  const char* bt = kBridgeTable;
  Key port = Key().ifname(j.port);
  Key pm = Key().u32(j.mark);
  b.element(add, kBridge, bt, "port_mark", port.b, port.len, pm.b, pm.len, {}, tag);
  Key mac = Key().ifname(j.port).mac(j.mac);
  b.element(add, kBridge, bt, "pin_mac", mac.b, mac.len, nullptr, 0, {}, tag);
  Key p4 = Key().ifname(j.port).mac(j.mac).addr(j.addr4);
  b.element(add, kBridge, bt, "pin4", p4.b, p4.len, nullptr, 0, {}, tag);
  for (const Addr* a : {&j.addr6, &j.ll6}) {
    Key p6 = Key().ifname(j.port).addr(*a);
    b.element(add, kBridge, bt, "pin6", p6.b, p6.len, nullptr, 0, {}, tag);
  }
  if (!add) {
    if (!j.flat) b.del_chain(kInet, t, egress);
    if (!host_peers) b.del_chain(kInet, t, peer);
  }
}

}  // namespace

void NftSocket::Close::operator()(mnl_socket* s) const noexcept { mnl_socket_close(s); }
NftSocket::NftSocket() = default;
NftSocket::NftSocket(NftSocket&&) noexcept = default;
NftSocket::~NftSocket() = default;

std::string egress_chain(const std::string& id) { return "jail_" + id; }
std::string peer_chain(const std::string& id) { return "peer_" + id; }

Result<NftSocket> open_nft_socket() {
  NftSocket s;
  s.sock_.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!s.sock_) return fail(errno, "open a netfilter netlink socket");
  if (mnl_socket_bind(s.sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return fail(errno, "bind a netfilter netlink socket");
  return s;
}

void close_detached(NftSocket&& s) noexcept {
  if (!s.get()) return;
  int fd = mnl_socket_get_fd(s.get());
  int gate[2];  // the grandchild closes the socket once our copy is closed (EOF on the gate)
  if (::pipe2(gate, O_CLOEXEC) != 0) return;  // s closes here, the slow way
  pid_t child = ::fork();
  if (child == 0) {
    // async-signal-safe from here: the caller may have threads.
    if (::fork() != 0) ::_exit(0);  // the grandchild is reparented and reaped by init
    int lo = std::min(fd, gate[0]), hi = std::max(fd, gate[0]);
    if (lo > 0) (void)sys::close_range(0, static_cast<unsigned>(lo - 1), 0);
    if (hi > lo + 1)
      (void)sys::close_range(static_cast<unsigned>(lo + 1), static_cast<unsigned>(hi - 1), 0);
    (void)sys::close_range(static_cast<unsigned>(hi + 1), ~0U, 0);
    char c;
    while (::read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(fd);  // the wait happens here, in nobody's way
    ::_exit(0);
  }
  ::close(gate[0]);
  if (child > 0) (void)sys::waitpid(child, nullptr, 0);  // it exits at once
  { NftSocket ours = std::move(s); }                     // not the last reference if forked
  ::close(gate[1]);
}

Result<bool> base_exists(NftSocket& s, std::string* comment_out) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  std::uint32_t seq = s.next_seq();
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, kInet, NLM_F_ACK, seq);
  TablePtr t{nftnl_table_alloc()};
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, kInetTable);
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  if (mnl_socket_sendto(s.get(), nlh, nlh->nlmsg_len) < 0) return fail(errno, "nftables");
  std::uint32_t portid = mnl_socket_get_portid(s.get());
  std::string comment;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s.get(), buf, sizeof buf);
    if (n < 0) return fail(errno, "nftables");
    auto cb = [](const nlmsghdr* nlh, void* data) -> int {
      TablePtr t{nftnl_table_alloc()};
      if (nftnl_table_nlmsg_parse(nlh, t.get()) < 0) return MNL_CB_OK;
      std::uint32_t len = 0;
      if (const void* ud = nftnl_table_get_data(t.get(), NFTNL_TABLE_USERDATA, &len))
        *static_cast<std::string*>(data) = udata_comment(ud, len, NFTNL_UDATA_TABLE_COMMENT);
      return MNL_CB_OK;
    };
    int r = mnl_cb_run(buf, static_cast<std::size_t>(n), seq, portid, cb, &comment);
    if (r < 0) {
      if (errno == ENOENT) return false;
      return fail(errno, "look for table inet {}", kInetTable);
    }
    if (r != MNL_CB_STOP) continue;
    if (comment_out) *comment_out = comment;
    return true;
  }
}

Result<void> upgrade_layout(NftSocket& s, const std::string& comment) {
  if (comment == kInetComment) return {};
  // Made by a stockade of an older layout, whose jails may still run. Layout 1's peer chains jump
  // to the egress map themselves, which gives the same verdict under the current from_jails;
  // layout 2 lacks the DNS port set and peer_hosts sets.
  char buf[MNL_SOCKET_BUFFER_SIZE];
  std::uint32_t seq = s.next_seq();
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, kInet, NLM_F_ACK, seq);
  SetPtr q{nftnl_set_alloc()};
  nftnl_set_set_str(q.get(), NFTNL_SET_TABLE, kInetTable);
  nftnl_set_set_str(q.get(), NFTNL_SET_NAME, kLayoutSet);
  nftnl_set_nlmsg_build_payload(nlh, q.get());
  if (mnl_socket_sendto(s.get(), nlh, nlh->nlmsg_len) < 0) return fail(errno, "nftables");
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s.get(), buf, sizeof buf);
    if (n < 0) return fail(errno, "nftables");
    int r = mnl_cb_run(buf, static_cast<std::size_t>(n), seq, mnl_socket_get_portid(s.get()),
                       nullptr, nullptr);
    if (r < 0 && errno != ENOENT) return fail(errno, "look for set {}", kLayoutSet);
    if (r == MNL_CB_STOP) return {};  // upgraded before
    if (r < 0) break;
  }
  // Layout 3 lacks the flat sets and chain, and the jumps to it from from_jails and input; the
  // two are rewritten whole (a batch is applied at once: no packet sees them half-made). The
  // older jails' chains and elements are left as they are and keep their verdicts.
  Batch b(s, 128 << 10);
  b.elements_exclusive(false);
  layout3_sets(b);
  layout4_sets(b);
  b.chain(kInet, kInetTable, kFlatChain, "", -1, 0, "filter", false);
  b.flush_chain(kInet, kInetTable, kFlatChain);
  flat_rules(b);
  b.flush_chain(kInet, kInetTable, "from_jails");
  from_jails_rules(b);
  b.flush_chain(kInet, kInetTable, "input");
  input_rules(b);
  b.set(kInet, kInetTable, {kLayoutSet, kTypeMark, 4}, NLM_F_EXCL);
  auto r = b.commit();
  if (!r && r.error().err == EEXIST) return {};  // another supervisor upgraded it first
  if (!r) return std::unexpected(common::context(r.error(), "upgrade stockade's nftables tables"));
  return {};
}

Result<void> ensure_base(NftSocket& s) {
  // An aborted batch costs the kernel 10-20 ms: ask first, create only if missing.
  if (TRY(base_exists(s))) return {};
  Batch b(s, 256 << 10);
  inet_base(b);
  bridge_base(b);
  auto r = b.commit();
  if (!r && r.error().err == EEXIST) return {};  // another supervisor created it first
  if (!r) return std::unexpected(common::context(r.error(), "create stockade's nftables tables"));
  return {};
}

Result<void> add_bridge(NftSocket& s, const std::string& bridge) {
  Batch b(s);
  Key k = Key().ifname(bridge);
  b.element(true, kInet, kInetTable, "bridges", k.b, k.len, nullptr, 0, {}, "stockade bridge");
  auto r = b.commit();
  if (!r && r.error().err == EEXIST) return {};
  return r;
}

Result<void> del_bridge(NftSocket& s, const std::string& bridge) {
  Batch b(s);
  Key k = Key().ifname(bridge);
  b.element(false, kInet, kInetTable, "bridges", k.b, k.len, nullptr, 0, {}, {});
  auto r = b.commit();
  if (!r && r.error().err == ENOENT) return {};
  return r;
}

Result<void> delete_base(NftSocket& s) {
  for (auto [family, name] : {std::pair{kInet, kInetTable}, std::pair{kBridge, kBridgeTable}}) {
    Batch b(s);
    b.del_table(family, name);
    auto r = b.commit();
    if (!r && r.error().err != ENOENT) return r;
  }
  return {};
}

namespace {

// Sends one dump request and calls cb for every answer message.
template <class F>
Result<void> dump(NftSocket& s, std::uint16_t type, int family, F&& build,
                  int (*cb)(const nlmsghdr*, void*), void* data) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  std::uint32_t seq = s.next_seq();
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(buf.data(), type, static_cast<std::uint16_t>(family), NLM_F_DUMP, seq);
  build(nlh);
  if (mnl_socket_sendto(s.get(), nlh, nlh->nlmsg_len) < 0) return fail(errno, "nftables dump");
  std::uint32_t portid = mnl_socket_get_portid(s.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(s.get(), buf.data(), buf.size());
    if (n < 0) return fail(errno, "nftables dump");
    int r = mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq, portid, cb, data);
    if (r == MNL_CB_STOP) return {};
    if (r < 0) {
      if (errno == ENOENT) return {};  // no table yet: nothing to list
      return fail(errno, "nftables dump");
    }
  }
}

struct Element {
  Key key;
  std::string comment;
  std::uint64_t packets = 0, bytes = 0;  // its counter, if it has one
};

// Every element of an inet set, with its comment and counter (none if the set is missing).
Result<std::vector<Element>> set_elements(NftSocket& s, const char* set) {
  std::vector<Element> out;
  auto cb = [](const nlmsghdr* nlh, void* data) -> int {
    SetPtr st{nftnl_set_alloc()};
    if (nftnl_set_elems_nlmsg_parse(nlh, st.get()) < 0) return MNL_CB_OK;
    auto each = [](nftnl_set_elem* e, void* d) -> int {
      Element el;
      std::uint32_t len = 0;
      const void* key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
      if (!key || len > sizeof el.key.b) return 0;
      el.key.bytes(key, len);
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_USERDATA)) {
        const void* ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &len);
        el.comment = udata_comment(ud, len, NFTNL_UDATA_SET_ELEM_COMMENT);
      }
      auto expr = [](nftnl_expr* x, void* p) -> int {
        auto* el = static_cast<Element*>(p);
        if (std::strcmp(nftnl_expr_get_str(x, NFTNL_EXPR_NAME), "counter") == 0) {
          el->packets = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_PACKETS);
          el->bytes = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_BYTES);
        }
        return 0;
      };
      nftnl_set_elem_expr_foreach(e, expr, &el);
      static_cast<std::vector<Element>*>(d)->push_back(std::move(el));
      return 0;
    };
    nftnl_set_elem_foreach(st.get(), each, data);
    return MNL_CB_OK;
  };
  auto build = [&](nlmsghdr* nlh) {
    SetPtr q{nftnl_set_alloc()};
    nftnl_set_set_str(q.get(), NFTNL_SET_TABLE, kInetTable);
    nftnl_set_set_str(q.get(), NFTNL_SET_NAME, set);
    nftnl_set_elems_nlmsg_build_payload(nlh, q.get());
  };
  TRY(dump(s, NFT_MSG_GETSETELEM, kInet, build, cb, &out));
  return out;
}

// A flat jail's elements, found by their comments: for one rebuilt from its lease, which does
// not hold its rules.
Result<std::vector<FlatElement>> find_flat_elements(NftSocket& s, const std::string& id) {
  std::vector<FlatElement> out;
  for (const char* set : kFlatSets)
    for (auto& e : TRY(set_elements(s, set)))
      if (names_jail(e.comment, id)) out.push_back({set, e.key, e.comment});
  return out;
}

}  // namespace

bool flat_policy(const JailRules& j) {
  for (std::size_t i = 0; i < j.allow.size(); ++i)
    if (!flat_key(j.allow[i], j.mark, i < j.dns_rules)) return false;
  return true;
}

namespace {

std::size_t batch_size(const JailRules& j, std::size_t flat) {
  return (64 << 10) + (j.allow.size() + j.peers.size() + j.publish.size() + flat) * 1024;
}

}  // namespace

Result<void> add_jail(NftSocket& s, const JailRules& j) {
  if (j.flat && !flat_policy(j))
    return fail(EINVAL, "jail {}: a rule that is no exact key cannot be a set element", j.id);
  std::vector<FlatElement> flat;
  if (j.flat) flat = flat_elements(j);
  Batch b(s, batch_size(j, flat.size()));
  jail_objects(b, j, true, flat);
  auto r = b.commit();
  if (!r && r.error().err == EEXIST && r.error().what.starts_with("element of publish"))
    return fail(EADDRINUSE, "a published host port is already published by another jail");
  return r;
}

std::vector<std::string> add_jail_messages(const JailRules& j) {
  NftSocket none;  // a batch uses its socket only to send
  std::vector<FlatElement> flat;
  if (j.flat && flat_policy(j)) flat = flat_elements(j);
  Batch b(none, batch_size(j, flat.size()));
  jail_objects(b, j, true, flat);
  return b.described();
}

Result<void> del_jail(NftSocket& s, const JailRules& j) {
  std::vector<FlatElement> flat;
  if (j.flat) flat = j.policy_known ? flat_elements(j) : TRY(find_flat_elements(s, j.id));
  {
    Batch b(s, batch_size(j, flat.size()));
    jail_objects(b, j, false, flat);
    if (b.commit()) return {};
  }
  // Something was missing: remove what is there, one object at a time.
  std::optional<common::Error> hard;
  Batch b(s);
  b.one_by_one(&hard);
  jail_objects(b, j, false, flat);
  if (hard) return std::unexpected(*hard);
  return {};
}

Result<std::vector<std::string>> jail_ids(NftSocket& s) {
  std::vector<std::string> ids;
  auto cb = [](const nlmsghdr* nlh, void* data) -> int {
    ChainPtr c{nftnl_chain_alloc()};
    if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) return MNL_CB_OK;
    const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
    const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
    if (table && name && std::strcmp(table, kInetTable) == 0 && std::strncmp(name, "jail_", 5) == 0)
      static_cast<std::vector<std::string>*>(data)->push_back(name + 5);
    return MNL_CB_OK;
  };
  TRY(dump(
      s, NFT_MSG_GETCHAIN, kInet, [](nlmsghdr*) {}, cb, &ids));
  for (auto& e : TRY(set_elements(s, "marks")))  // flat jails have no chain
    if (e.comment.starts_with("jail ")) ids.push_back(e.comment.substr(5));
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Result<std::vector<RuleCounter>> jail_counters(NftSocket& s, const std::string& id) {
  std::vector<RuleCounter> out;
  auto cb = [](const nlmsghdr* nlh, void* data) -> int {
    RulePtr r{nftnl_rule_alloc()};
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return MNL_CB_OK;
    RuleCounter rc;
    rc.chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
    std::uint32_t len = 0;
    if (const void* ud = nftnl_rule_get_data(r.get(), NFTNL_RULE_USERDATA, &len))
      rc.comment = udata_comment(ud, len, NFTNL_UDATA_RULE_COMMENT);
    bool has_counter = false;
    auto expr_cb = [](nftnl_expr* e, void* d) -> int {
      auto* p = static_cast<std::pair<RuleCounter*, bool*>*>(d);
      if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
        p->first->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        p->first->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
        *p->second = true;
      }
      return 0;
    };
    std::pair<RuleCounter*, bool*> ctx{&rc, &has_counter};
    nftnl_expr_foreach(r.get(), expr_cb, &ctx);
    if (has_counter) static_cast<std::vector<RuleCounter>*>(data)->push_back(std::move(rc));
    return MNL_CB_OK;
  };
  std::string chain = egress_chain(id);
  auto build = [&](nlmsghdr* nlh) {
    RulePtr r{nftnl_rule_alloc()};
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, kInetTable);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
  };
  TRY(dump(s, NFT_MSG_GETRULE, kInet, build, cb, &out));
  if (!out.empty()) return out;
  // No chain (every jail chain has counters): a flat jail's elements, "jail <id> <n>: <rule>",
  // in the order of n.
  std::vector<std::pair<unsigned long, RuleCounter>> found;
  for (std::size_t i = 0; i < kFlatCounted; ++i)
    for (auto& e : TRY(set_elements(s, kFlatSets[i]))) {
      if (!names_jail(e.comment, id)) continue;
      std::string rest = e.comment.substr(5 + id.size());
      auto colon = rest.find(": ");
      if (rest.empty() || rest[0] != ' ' || colon == std::string::npos) continue;
      unsigned long n = std::strtoul(rest.c_str() + 1, nullptr, 10);
      found.push_back({n, {kFlatChain, rest.substr(colon + 2), e.packets, e.bytes}});
    }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [n, c] : found) out.push_back(std::move(c));
  return out;
}

}  // namespace netjail::detail
