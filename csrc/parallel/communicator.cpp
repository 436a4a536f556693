// What every communicator shares: the file store, each rank's identity for error messages, and
// the diagnosis of a failed collective (which peer on this host is gone or stopped).
#include "llama4/communicator.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace llama4 {

namespace {
std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// Keys may hold '/', which is no part of a file name.
std::string file_name(const std::string& key) {
  std::string out;
  for (char c : key) out += (c == '/' || c == '\\') ? '%' : c;
  return out;
}

// "" when the process runs, else why not ("exited", "is stopped").
std::string process_state(long pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return kill(pid_t(pid), 0) != 0 && errno == ESRCH ? "has exited" : "";
  const size_t close = line.rfind(')');  // the command name may hold spaces and parentheses
  const char state = close + 2 < line.size() ? line[close + 2] : '?';
  if (state == 'Z' || state == 'X') return "has exited";
  if (state == 'T' || state == 't') return "is stopped";
  return "";
}
}  // namespace

FileStore::FileStore(std::string dir) : dir_(std::move(dir)) {
  LLAMA4_CHECK_ARG(!dir_.empty(), "FileStore: the folder name is empty");
  if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    throw ValueError("FileStore: cannot create the folder '" + dir_ + "'");
}

void FileStore::set(const std::string& key, const std::string& value) {
  const std::string path = dir_ + "/" + file_name(key);
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(value.data(), std::streamsize(value.size()));
    if (!f) throw Error("FileStore: cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("FileStore: cannot rename '" + tmp + "'");
}

std::string FileStore::get(const std::string& key, double timeout_s) {
  const std::string path = dir_ + "/" + file_name(key);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::ifstream f(path, std::ios::binary);
    if (f) {
      std::ostringstream os;
      os << f.rdbuf();
      return os.str();
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw RankError(-1, "FileStore '" + dir_ + "': key '" + key + "' was not set within " +
                              std::to_string(timeout_s) + " s (a rank did not start or join)");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Communicator::publish_identity(std::shared_ptr<Store> store, const std::string& prefix, double timeout_s) {
  store_ = std::move(store);
  prefix_ = prefix;
  const std::string me = hostname() + " " + std::to_string(long(getpid()));
  store_->set(prefix + "/identity/" + std::to_string(rank_), me);
  peers_.assign(size_t(size_), "");
  for (int r = 0; r < size_; ++r) peers_[size_t(r)] = store_->get(prefix + "/identity/" + std::to_string(r), timeout_s);
}

void Communicator::fail(const std::string& what, const std::string& cause) const {
  const std::string here = hostname();
  const auto failed = [&](int r) {  // r recorded a failure of its own (so it is not the cause)
    try {
      store_->get(prefix_ + "/failed/" + std::to_string(r), 0.0);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  if (store_) {
    try {
      store_->set(prefix_ + "/failed/" + std::to_string(rank_), cause);
    } catch (const std::exception&) {  // best effort: the store may be gone with rank 0
    }
  }
  // A peer's connection closes while it exits, a moment before it shows as exited: look again
  // for a little while before saying that no peer could be blamed.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  do {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ || size_t(r) >= peers_.size() || (store_ && failed(r))) continue;
      std::istringstream is(peers_[size_t(r)]);
      std::string host;
      long pid = 0;
      if (!(is >> host >> pid) || host != here) continue;
      const std::string state = process_state(pid);
      if (!state.empty())
        throw RankError(r, detail::concat(backend(), " ", what, " on rank ", rank_, " failed: rank ", r,
                                          " (pid ", pid, ") ", state, " [", cause, "]"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < give_up);
  throw RankError(-1, detail::concat(backend(), " ", what, " on rank ", rank_,
                                     " failed: a peer rank did not answer within ", timeout_s_,
                                     " s or closed its connection [", cause, "]"));
}

}  // namespace llama4
