# frozen_string_literal: true

module AcidicJob
  # Hooks into the frameworks present: ActionMailer (deliver_transactionally), ActiveJob
  # and Sidekiq (acknowledging staged jobs of classes that do not include AcidicJob,
  # such as awaited workers), and Rails (rake task, generator).
  module Integrations
    module_function

    def install
      ActiveSupport.on_load(:action_mailer) do
        ::ActionMailer::MessageDelivery.include(AcidicJob::DeliverTransactionallyExtension)
      end
      ActiveSupport.on_load(:active_job) do
        include AcidicJob::Integrations::ActiveJobAcknowledgement
        # perform_transactionally for every job, not only those including AcidicJob
        include AcidicJob::PerformTransactionallyExtension
      end
      install_sidekiq if defined?(::Sidekiq)
      require_relative "railtie" if defined?(::Rails::Railtie)
    end

    def install_sidekiq
      install_sidekiq_testing
      return if @sidekiq_installed

      @sidekiq_installed = true
      ::Sidekiq::Worker::ClassMethods.include(AcidicJob::PerformTransactionallyExtension::ClassMethods)
      ::Sidekiq.configure_server do |config|
        config.server_middleware do |chain|
          chain.add AcidicJob::Integrations::SidekiqAcknowledgement
        end
        config.on(:startup) { AcidicJob::Recovery.start }
        config.on(:shutdown) { AcidicJob::Recovery.stop }
      end
    end

    # Sidekiq::Testing (fake! drains, inline! pushes) runs its own server middleware chain,
    # not the server's: plain workers staged under it need the acknowledgement there too.
    def install_sidekiq_testing
      return if @sidekiq_testing_installed || !defined?(::Sidekiq::Testing)

      @sidekiq_testing_installed = true
      ::Sidekiq::Testing.server_middleware do |chain|
        chain.add AcidicJob::Integrations::SidekiqAcknowledgement
      end
    end

    # A staged job carries {"staged_job_gid" => ...} as its last argument. Classes that
    # include AcidicJob take it off in their perform wrapper and acknowledge it in
    # after_perform; for the others these hooks do it.
    def staged_gid_argument?(arg)
      arg.is_a?(Hash) && arg.key?("staged_job_gid")
    end

    module ActiveJobAcknowledgement
      extend ActiveSupport::Concern

      included do
        before_perform do |job|
          next if job.class.include?(AcidicJob)
          next unless AcidicJob::Integrations.staged_gid_argument?(job.arguments.last)

          @acidic_job_staged_gid = job.arguments.pop["staged_job_gid"]
        end
        after_perform do |_job|
          AcidicJob::Outbox.acknowledge(@acidic_job_staged_gid) if @acidic_job_staged_gid
        end
      end
    end

    class SidekiqAcknowledgement
      def call(worker, job, _queue)
        args = job["args"]
        if worker.class.include?(AcidicJob) || !args.is_a?(Array) ||
           !AcidicJob::Integrations.staged_gid_argument?(args.last)
          return yield
        end

        gid = args.pop["staged_job_gid"]
        result = yield
        AcidicJob::Outbox.acknowledge(gid)
        result
      end
    end
  end
end
