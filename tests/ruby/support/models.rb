# frozen_string_literal: true

class Ride < ActiveRecord::Base; end
class Audit < ActiveRecord::Base; end

# Step executions recorded in memory (the in-process suites).
module Trace
  @events = []
  class << self
    attr_reader :events

    def clear
      @events.clear
    end

    def <<(event)
      @events << event
    end

    def count(event)
      @events.count(event)
    end
  end
end

class RideMailer < ActionMailer::Base
  default from: "rides@example.com"

  def confirm_charge
    mail(to: params[:to], subject: "Ride #{params[:ride_id]}", body: "Thanks")
  end

  def plain_receipt(to)
    mail(to: to, subject: "Receipt", body: "Thanks")
  end
end
