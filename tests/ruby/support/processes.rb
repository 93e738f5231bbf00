# frozen_string_literal: true

# Stopping the Sidekiq processes a test started. A Sidekiq that has not handled TERM in
# time (once in a clean-clone CI run one sat idle and never exited) is killed: a suite
# must not wait for it forever.
module StopsProcesses
  def stop_process(pid, signal = "TERM", grace: 20)
    Process.kill(signal, pid)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + grace
    until Process.wait(pid, Process::WNOHANG)
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        Process.kill("KILL", pid)
        Process.wait(pid)
        break
      end
      sleep 0.05
    end
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end
