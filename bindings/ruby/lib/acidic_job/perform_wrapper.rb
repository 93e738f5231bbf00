# frozen_string_literal: true

module AcidicJob
  # Prepended to every job class: remembers the arguments of `perform` (they become the
  # run's job_args) and takes off the `staged_job_gid` a staged job was pushed with.
  module PerformWrapper
    def perform(*args, **kwargs)
      final_arg = args.last
      if final_arg.is_a?(Hash) && final_arg.key?("staged_job_gid")
        args = args[0..-2]
        @staged_job_gid = final_arg["staged_job_gid"]
      end

      set_arguments_for_perform(*args, **kwargs)

      super(*args, **kwargs)
    end

    private

    def set_arguments_for_perform(*args, **kwargs)
      @arguments_for_perform = if args.any? && kwargs.any?
                                 args + [kwargs]
                               elsif args.any? && kwargs.none?
                                 args
                               elsif args.none? && kwargs.any?
                                 [kwargs]
                               else
                                 []
                               end
    end
  end
end
