# frozen_string_literal: true

module AcidicJob
  # `deliver_transactionally` on an ActionMailer delivery: stage its delivery job like
  # perform_transactionally. The job and its arguments are built exactly as Rails 6.1's
  # deliver_later builds them (ActionMailer::MailDeliveryJob with keyword arguments).
  module DeliverTransactionallyExtension
    def deliver_transactionally(_options = {})
      job = build_transactional_delivery_job
      Outbox.stage("activejob", job.class.name, job.serialize)
    end

    private

    def build_transactional_delivery_job
      parameterized = defined?(@params) && respond_to?(:delivery_job_class, true)
      job_class = parameterized ? delivery_job_class : @mailer_class.delivery_job
      mail_delivery = defined?(::ActionMailer::MailDeliveryJob) && job_class <= ::ActionMailer::MailDeliveryJob
      if parameterized && mail_delivery
        job_class.new(@mailer_class.name, @action.to_s, "deliver_now", params: @params, args: @args)
      elsif parameterized
        job_class.new(@mailer_class.name, @action.to_s, "deliver_now", @params, *@args)
      elsif mail_delivery
        job_class.new(@mailer_class.name, @action.to_s, "deliver_now", args: @args)
      else
        job_class.new(@mailer_class.name, @action.to_s, "deliver_now", *@args)
      end
    end
  end
end
